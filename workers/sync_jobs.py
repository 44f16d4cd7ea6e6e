"""Sync pipelines (push apply, index) are registered here by the engine."""
