"""Backup layers: how each kind of backup is found, fetched and restored."""
