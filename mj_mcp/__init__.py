"""mj-mcp: the Model Context Protocol server for the Midjourney-proxy API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
