"""The `swarm` command line."""

from agents.cli.app import app, main

__all__ = ["app", "main"]
