"""The one error of the access rules: the access file cannot be used."""


class ReadersError(ValueError):
    """The access file cannot be used; raised at start-up or reload, saying where and why."""
