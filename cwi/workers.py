"""Independent cache fills in single-thread worker processes.

On a CPU, two single-thread processes do about twice the work of one; one
process with two torch threads does 1.6x (README, "Threads").  Work that splits
into independent jobs, each storing its artefact in the cache (training runs,
word-weight tables), therefore runs in worker processes where the machine has
the cores: :func:`fill` runs the jobs, longest first, and the caller then reads
every artefact from the cache as if it had computed it itself.  Nothing else
changes: cache keys hold no worker count, and a job computes what the caller
would (up to floating-point rounding, one thread against several).

This module imports nothing of :mod:`cwi` at import time: the jobs' functions
bring their own imports into the workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Job", "workers", "fill", "ENVIRONMENT"]

# Sets the number of worker processes (1: everything in the calling process).
ENVIRONMENT = "CWI_WORKERS"


@dataclass(frozen=True)
class Job:
    """One cache fill: ``function(*args)``, and how much work it is (what orders the queue, longest first)."""

    function: Callable
    args: tuple
    work: float


def workers(jobs: int) -> int:
    """Worker processes for `jobs` independent jobs: one per torch thread on a CPU, none (1) with a GPU.

    ``CWI_WORKERS`` sets it; the chapters' kernels have one torch thread per usable CPU (``OMP_NUM_THREADS``).
    """
    chosen = os.environ.get(ENVIRONMENT)
    if chosen:
        if not chosen.isdigit() or int(chosen) < 1:
            raise ValueError(f"{ENVIRONMENT} must be a positive whole number, got {chosen!r}")
        return max(1, min(jobs, int(chosen)))
    import torch

    from .encoders import default_device

    if default_device().type != "cpu":  # one accelerator: the jobs queue for it in the calling process
        return 1
    return max(1, min(jobs, torch.get_num_threads()))


def _single_thread() -> None:
    """A worker's start: one torch thread, so that the workers share the cores instead of fighting over them."""
    import torch

    torch.set_num_threads(1)


def _call(function: Callable, args: tuple) -> None:
    function(*args)


def fill(jobs: list[Job], min_work: float, what: str = "jobs") -> bool:
    """Run `jobs` in single-thread worker processes, longest first, if there is enough work; return whether it did.

    A worker process starts in seconds (it imports torch and transformers anew),
    so the jobs run in workers only when there are two workers to use and their
    work adds up to `min_work` or more; otherwise nothing runs and the caller
    computes them itself.  An error in a job is raised here, after the running
    jobs end (what they stored stays in the cache).
    """
    count = workers(len(jobs))
    if count < 2 or sum(job.work for job in jobs) < min_work:
        return False
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from .progress import Progress, announce

    announce(f"{len(jobs)} {what} in {count} single-thread worker processes")
    with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_single_thread) as pool, Progress(len(jobs), what, "done") as bar:
        futures = [pool.submit(_call, job.function, job.args) for job in sorted(jobs, key=lambda job: -job.work)]
        for future in as_completed(futures):
            try:
                future.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # the queued jobs never start; the running ones end
                raise
            bar.update()
    return True
