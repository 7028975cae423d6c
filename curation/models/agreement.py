"""Agreement statistics: stored reports per project."""

__all__: list[str] = []
