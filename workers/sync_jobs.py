"""Engine pipelines shared by the dialects: Synkronus push and the index step."""
import workers.index  # noqa: F401
import workers.synkronus  # noqa: F401
