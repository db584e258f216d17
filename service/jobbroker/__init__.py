"""jobbroker: an HTTP job broker on PostgreSQL."""

__version__ = "0.1.0"
