"""Helpers every stage shares: atomic file writes and JSON-lines I/O."""
