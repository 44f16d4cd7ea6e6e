"""Synkronus's own tables: none yet. Observations live in the engine's `records` (namespace
"synkronus") and pull cursors in the engine's `client_cursors`."""
