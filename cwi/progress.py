"""Progress of long computations, for the terminal that runs the book.

A chapter runs in a Jupyter kernel that papermill starts: what its cells print
goes into the notebook, not to the terminal of ``python -m cwi book``.  The
runner therefore names a file in ``CWI_PROGRESS_FILE`` and prints every line
written to it (:func:`cwi.__main__.run_chapter`).  :class:`Progress` appends a
line such as

    masked-LM: 1,200/3,000 steps (40%), loss 4.210, 2.1 steps/s, 14 min left

to that file every `every` seconds; :func:`announce` writes one line at once.
Without ``CWI_PROGRESS_FILE`` (a chapter opened in JupyterLab) it is a tqdm bar
in the notebook instead.
"""

from __future__ import annotations

import os
import time

__all__ = ["Progress", "announce", "duration"]

ENVIRONMENT = "CWI_PROGRESS_FILE"
EVERY = 30.0  # seconds between lines: the runner's terminal hears from a long loop twice a minute


def duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min"`` or ``"1 h 05 min"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def announce(message: str) -> None:
    """Write `message` as one line to the runner's terminal (nothing outside a runner)."""
    path = os.environ.get(ENVIRONMENT)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(message.replace("\n", " ") + "\n")


class Progress:
    """A counted loop: a line to the runner every `every` seconds, or a tqdm bar where no runner reads them.

    Parameters
    ----------
    total
        Units of work in the loop.
    what
        What the loop does, first word of every line (``"masked-LM"``).
    unit
        The units' name (``"steps"``, ``"sentences"``).
    show_bar
        Show a tqdm bar in the notebook, unless a runner reads the lines (a bar
        papermill saves is a dead widget in the HTML book).
    every
        Seconds between lines (default :data:`EVERY`); the last line is written when
        the loop closes, if it ran at least that long.
    announce_start
        Also write a line when the loop starts (for the few long loops of a chapter).
    """

    def __init__(self, total: int, what: str, unit: str = "steps", show_bar: bool = True, every: float | None = None,
                 announce_start: bool = False):
        from tqdm.auto import tqdm

        self.total, self.what, self.unit = total, what, unit
        self.every = EVERY if every is None else every
        under_runner = bool(os.environ.get(ENVIRONMENT))
        self.bar = tqdm(total=total, desc=what, unit=f" {unit}", disable=not show_bar or under_runner)
        self.done, self.postfix, self.reported = 0, "", None
        self.start = self.last = time.perf_counter()
        if announce_start:
            announce(f"{what}: {total:,} {unit} to do")

    def update(self, n: int = 1) -> None:
        self.done += n
        self.bar.update(n)
        if time.perf_counter() - self.last >= self.every:
            self._report()

    def set_postfix(self, **values) -> None:
        """Values shown with the count, such as the running loss."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        self.bar.set_postfix(**values)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        parts = [f"{self.what}: {self.done:,}/{self.total:,} {self.unit}{share}"]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 100 else f"{rate:.3g} {self.unit}/s")
        if self.done < self.total and rate > 0:
            parts.append(f"{duration((self.total - self.done) / rate)} left")
        else:
            parts.append(f"done in {duration(elapsed)}")
        return ", ".join(parts)

    def _report(self) -> None:
        announce(self.line())
        self.last, self.reported = time.perf_counter(), self.done

    def close(self) -> None:
        self.bar.close()
        # The last line, unless the last update just wrote it (the same count twice in a row).
        if time.perf_counter() - self.start >= self.every and self.reported != self.done:
            self._report()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
