"""marketing-agents: a distributed marketing multi-agent system on Ray."""

__version__ = "0.1.0"
__all__ = ["__version__"]
