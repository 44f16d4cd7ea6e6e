"""Synkronus 1.0.3 dialect."""


def register(app) -> None:
    pass
