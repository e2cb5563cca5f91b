"""Crawler: discovery, polite fetching, rendering and extraction (see DESIGN.md)."""
