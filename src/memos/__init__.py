"""MemOS: a memory operating system for LLM applications and agents."""

__version__ = "0.1.0"
