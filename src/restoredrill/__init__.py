"""restoredrill: prove PostgreSQL backups restore, by restoring them."""

__version__ = "0.1.0"
