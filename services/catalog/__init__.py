"""The SQL catalog: models, sessions, migrations and small keyword-only queries (no torch)."""
