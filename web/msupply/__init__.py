"""mSupply sync v1–v4 dialect (filled by its issue)."""


def register(app) -> None:
    pass
