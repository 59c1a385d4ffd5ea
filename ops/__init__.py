"""markdown-manager-ops: backup and restore for markdown-manager's PostgreSQL database."""

__version__ = "0.1.0"

__all__ = ["__version__"]
