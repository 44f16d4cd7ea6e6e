"""Ops endpoints: /health, /version (Synkronus 1.0.3 shapes) and job status for every job kind."""
