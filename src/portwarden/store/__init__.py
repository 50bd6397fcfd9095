"""SQLite (WAL): the one source of truth for blocks and their history."""
