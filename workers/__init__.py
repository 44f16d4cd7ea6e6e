"""Background work: the Celery app factory, thin tasks, and the pipeline steps they call."""
