"""Progress bars (rich, on stderr) that every long loop uses and ``--quiet`` silences."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# stderr=True, not file=sys.stderr: the console writes to whatever sys.stderr is at the time
# (redirect_stderr, pytest's capture), not to the stream that was there at import
_console = Console(stderr=True)


def console() -> Console:
    """The stderr console every log line and progress bar goes to (stdout is for results)."""
    return _console


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        """Move the bar forward by ``n`` steps."""
        if self._p is not None and self._t is not None:
            self._p.advance(self._t, n)

    def update(self, **fields: object) -> None:
        """Set extra text shown after the bar, e.g. ``bar.update(loss=0.12)``."""
        if self._p is not None and self._t is not None:
            text = "  ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
            )
            self._p.update(self._t, info=text)


@contextmanager
def progress_bar(total: int, description: str, *, quiet: bool = False) -> Iterator[_Bar]:
    """A rich progress bar on stderr; a no-op when ``quiet``."""
    if quiet:
        yield _Bar(None, None)
        return
    prog = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=_console,
        transient=True,
    )
    with prog:
        task = prog.add_task(description, total=total, info="")
        yield _Bar(prog, task)


def log(message: str, *, quiet: bool = False) -> None:
    """One log line on stderr unless ``quiet``."""
    if not quiet:
        _console.print(message, highlight=False)
