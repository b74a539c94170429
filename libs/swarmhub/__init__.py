"""SwarmHub: a task hub for swarms of AI agents, built on NATS."""

__version__ = "0.1.0"
