"""Agents: the swarm, the LLM layer and the CLI — the only package that imports the other three."""
