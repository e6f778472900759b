"""Restore targets: where a backup is restored (a throwaway local instance for now)."""
