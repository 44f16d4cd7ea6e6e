"""Storage: tables, migrations, the session scope, and the engine's set-based operations."""
