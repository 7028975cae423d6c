"""A terminal progress bar for long management commands (import, export, ...)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from tqdm import tqdm

Progress = Callable[[int, int], None]


class Terminal(Protocol):
    """A command's stderr (Django's OutputWrapper or a text stream): is it a terminal?"""

    def isatty(self) -> bool: ...


@contextmanager
def progress_bar(stream: Terminal, *, unit: str, desc: str) -> Iterator[Progress | None]:
    """Yield a `progress(done, total)` callback drawing a bar, or None off a terminal."""
    if not stream.isatty():  # no bar in logs and pipes
        yield None
        return
    with tqdm(unit=unit, unit_scale=True, desc=desc) as bar:  # draws on stderr

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update
