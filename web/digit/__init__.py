"""DIGIT Health sync dialect and filestore (filled by its issue)."""


def register(app) -> None:
    pass
