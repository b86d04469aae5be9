"""Command line: run the book's chapters with papermill and render the book.

    python -m cwi book --profile default     # every chapter of _toc.yml, then the HTML book
    python -m cwi book --profile study.toml --dry-run   # a study file's whole path at smoke sizes
    python -m cwi run 03_statistics --profile smoke
    python -m cwi chapters                   # list the chapters in TOC order
    python -m cwi lab                        # JupyterLab on book/, chapters open as notebooks
    python -m cwi attribute --profile paper --workers 4   # the word weights on a Dask cluster, before the book
    python -m cwi cache adopt                # record the checksums of a cache from before checksums
    python -m cwi explain all-MiniLM-L6-v2 "A man plays." "A man is playing."   # any encoder, any sentences

Chapters are the ``book/*.py`` sources (Jupytext py:percent) listed in
``_toc.yml``.  Each is converted to a notebook and executed with the profile
reference (a built-in name or a study file's absolute path: :func:`cwi.config.get_profile`)
as the papermill parameter ``profile``, in a private temporary folder of the run
that also holds its kernel's connection file and sockets; the executed notebook
replaces the paired ``book/<chapter>.ipynb`` only when the chapter succeeded (a
failed one is kept as ``book/<chapter>.failed.ipynb``).  Jupyter Book then renders
the executed notebooks without running them again.

Before it works, a run checks that the cache can be written
(:func:`cwi.cache.ready`), removes what killed runs left behind (unfinished cache
writes: :func:`cwi.cache.sweep_staging`; private folders) and checks its
arguments; an error ends it with one line (``--verbose``: with the traceback), a
kernel that died names its chapter, the memory the chapter's processes had
reached and the notebook kept, and Ctrl-C ends it with one line and exit code 130.

While a chapter runs, the terminal shows what its long loops report (training
steps, attributed sentences, with the time left: :mod:`cwi.progress`) and a
"still running" line at least once a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import yaml

from .config import DRY_RUN, PROFILES
from .progress import ENVIRONMENT as PROGRESS_ENVIRONMENT
from .progress import duration

PROFILE_ENVIRONMENT = "CWI_PROFILE"  # the profile a chapter opened in JupyterLab starts with (python -m cwi lab)

__all__ = ["ChapterFailed", "ChapterInterrupted", "toc_entries", "chapter_sources", "run_chapter", "build_html",
           "main"]


class ChapterFailed(RuntimeError):
    """A chapter raised during execution, or its kernel died."""


class ChapterInterrupted(KeyboardInterrupt):
    """Ctrl-C while a chapter ran: its kernel is stopped, and the cache keeps what was finished."""

    def __init__(self, chapter: str):
        super().__init__(chapter)
        self.chapter = chapter


def toc_entries(root: Path) -> list[str]:
    """The ``file`` entries of ``root/_toc.yml``, in reading order."""
    toc = root / "_toc.yml"
    if not toc.exists():
        raise FileNotFoundError(
            f"no _toc.yml in {root}: run from the repository root or pass --root"
        )
    entries: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    entries.append(node[key])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)

    walk(yaml.safe_load(toc.read_text()))
    return entries


def chapter_sources(root: Path) -> list[Path]:
    """The chapter sources (``.py``) of the TOC, in reading order; Markdown pages are skipped."""
    sources = []
    for entry in toc_entries(root):
        path = root / Path(entry).with_suffix(".py")
        if path.exists():
            sources.append(path)
        elif not any((root / Path(entry).with_suffix(s)).exists() for s in (".md", ".ipynb")):
            raise FileNotFoundError(f"_toc.yml lists {entry!r}, but {root / entry}.py/.md does not exist")
    return sources


HEARTBEAT = 60.0  # seconds: the longest the terminal stays silent while a chapter runs


class TerminalProgress:
    """While a chapter runs: print the lines its kernel writes to ``CWI_PROGRESS_FILE`` (:mod:`cwi.progress`).

    A line is printed at least every `heartbeat` seconds: a cell without progress
    reports of its own gets "still running" with the time so far.  When the
    chapter ends, the longest wait between lines that were not heartbeats is
    printed, if a heartbeat was needed (a loop that deserves a progress line).
    ``peak_bytes`` is the most memory the runner's child processes (the kernel
    and its workers) held together at one poll: what a dead kernel's message cites.
    """

    def __init__(self, chapter: str, heartbeat: float | None = None, poll: float = 1.0, folder: Path | None = None):
        import threading

        self.chapter, self.heartbeat, self.poll = chapter, heartbeat or HEARTBEAT, poll
        handle, self.path = tempfile.mkstemp(prefix=f"cwi-progress-{chapter}-", suffix=".log", dir=folder)
        os.close(handle)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.previous = os.environ.get(PROGRESS_ENVIRONMENT)

    def __enter__(self):
        os.environ[PROGRESS_ENVIRONMENT] = self.path  # the kernel papermill starts inherits it
        self.start, self.heard = time.perf_counter(), None  # the clock of silences starts at the kernel's first line
        self.peak_bytes = 0
        self.longest_silence, self.heartbeats = 0.0, 0
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        if self.heard is None:  # not one line from the kernel: the whole chapter was one silence
            self.heard = self.start
        self._heard()
        if self.heartbeats:
            self._say(f"longest wait with no progress line: {duration(self.longest_silence)}", heartbeat=True)
        if self.previous is None:
            os.environ.pop(PROGRESS_ENVIRONMENT, None)
        else:
            os.environ[PROGRESS_ENVIRONMENT] = self.previous
        os.unlink(self.path)

    def _heard(self) -> None:
        """A line that was not a heartbeat (or the end): the silence before it is measured.

        Before the kernel's first line, the chapter's start counts only if it never wrote one: the
        start-up of a kernel and its imports is not a loop that owes the terminal a progress line.
        """
        now = time.perf_counter()
        if self.heard is not None:
            self.longest_silence = max(self.longest_silence, now - self.heard)
        self.heard = now

    def _say(self, text: str, heartbeat: bool = False) -> None:
        from tqdm import tqdm

        tqdm.write(f"  {self.chapter} | {text}")  # above papermill's cell bar, which it redraws
        sys.stdout.flush()
        self.last = time.perf_counter()
        if heartbeat:
            self.heartbeats += 1
        else:
            self._heard()

    def _measure(self) -> None:
        """Add up the resident memory of the runner's descendants (the kernel, its workers); keep the peak."""
        import psutil

        total = 0
        for child in psutil.Process().children(recursive=True):
            try:  # proportional set size: pages the workers share with the kernel counted once
                total += getattr(child.memory_full_info(), "pss", None) or child.memory_info().rss
            except psutil.Error:  # gone since it was listed, or another user's
                pass
        self.peak_bytes = max(self.peak_bytes, total)

    def _follow(self) -> None:
        self.last = time.perf_counter()
        with open(self.path, encoding="utf-8") as handle:
            while True:
                stopping = self.stop.wait(self.poll)
                self._measure()
                for line in handle.readlines():
                    self._say(line.rstrip("\n"))
                if stopping:
                    return
                if time.perf_counter() - self.last >= self.heartbeat:
                    self._say(f"still running, {duration(time.perf_counter() - self.start)} so far", heartbeat=True)


def finish_executed_notebook(notebook: Path, shown_as: Path | None = None) -> None:
    """Tag the chapter's own ``parameters`` cell ``remove-cell``, and sign the executed notebook.

    `shown_as` is where the notebook goes next: papermill's record of its input
    and output paths is set to it (it ran in a temporary folder).

    papermill adds the values the chapter ran with in an ``injected-parameters``
    cell below it; the book shows that one only, so the HTML states the profile
    it was built with, once.  Signing records in Jupyter's notary, as ``jupyter
    trust`` does, that the outputs come from this machine's own run, so
    JupyterLab runs their scripts (the interactive views of :mod:`cwi.interactive`)
    when the chapter is opened; an unsigned notebook shows them inactive.
    """
    import nbformat
    from nbformat.sign import NotebookNotary

    executed = nbformat.read(notebook, as_version=4)
    if shown_as is not None and "papermill" in executed.metadata:
        executed.metadata.papermill.update(input_path=str(shown_as), output_path=str(shown_as))
    for cell in executed.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    NotebookNotary().sign(executed)
    nbformat.write(executed, notebook)


def _cell_failed(source: Path, paired, err, notebook: Path, failed: Path) -> ChapterFailed:
    """The error of a chapter whose cell raised: the cell's place in the source, its first line, the kept notebooks."""
    # Count code cells in the source: papermill's injected parameters cell shifts its own count.
    code = [cell.source for cell in paired.cells if cell.cell_type == "code"]
    position = code.index(err.source) + 1 if err.source in code else "?"
    first_line = (err.source or "?").strip().splitlines()[0]
    kept = f" ({notebook.name}, of the last run that succeeded, is left as it was)" if notebook.exists() else ""
    return ChapterFailed(
        f"chapter {source} failed in code cell {position} of the source, starting "
        f"{first_line!r} ([{err.exec_count}] in the executed notebook): {err.ename}: {err.evalue}\n"
        f"The executed notebook with the full traceback is {failed}{kept}"
    )


def _keep_unless_kernel_died(record: logging.LogRecord) -> bool:
    """Keep a papermill log line unless it says the kernel died: the runner's own error line says that."""
    return "Kernel died" not in record.getMessage()


PRIVATE_PREFIX = "cwi-run-"  # + the runner's pid: the private folder of a run's kernels, under the temp folder


def run_chapter(source: Path, profile: str, progress: bool = True) -> Path:
    """Execute one chapter with papermill; return its executed ``.ipynb`` (beside the source).

    The chapter runs in a private temporary folder, which holds the notebook as
    it executes, the kernel's connection file and its sockets (Unix sockets:
    TCP without keys makes every kernel print an eavesdropping warning into the
    runner's terminal), so runs from one checkout never share them.  The
    executed notebook replaces ``book/<chapter>.ipynb`` only on success.

    Raises
    ------
    ChapterFailed
        Naming the chapter, the failing cell and the error, and where the executed
        notebook with the traceback is kept: ``<chapter>.failed.ipynb`` beside the
        source (the last good ``<chapter>.ipynb`` is left as it was).
    """
    import jupytext
    import papermill
    from traitlets.config import Config

    from .cache import atomic_write

    from .config import get_profile

    get_profile(profile)  # an unknown name or a study file that does not validate fails here, not in a kernel
    # The python3 kernelspec runs "python" from PATH: make that this interpreter, so the
    # kernel sees the same packages (cwi included) when the venv is not activated.
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    notebook, failed = source.with_suffix(".ipynb"), source.with_suffix(".failed.ipynb")
    paired = jupytext.read(source)
    # A source without a Jupytext header still runs on the Python kernel.
    paired.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    paired.metadata.setdefault("language_info", {"name": "python"})
    from nbclient.exceptions import DeadKernelError

    logging.getLogger("papermill").addFilter(_keep_unless_kernel_died)  # once: a filter is added only if not there
    private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-"))
    staged = private / notebook.name
    try:
        jupytext.write(paired, staged)
        kernel = {"transport": "ipc", "ip": str(private / "kernel"), "connection_file": str(private / "kernel.json")}
        terminal = TerminalProgress(source.stem, folder=private)
        try:
            with terminal, _kernel_stopped_on_interrupt():
                papermill.execute_notebook(staged, staged, parameters={"profile": profile}, cwd=str(source.parent),
                                           kernel_name="python3", progress_bar=progress,
                                           config=Config({"KernelManager": kernel}))
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                _stop_descendants()  # in case the interrupt came another way than a stop signal
            if staged.exists():  # what ran so far, for inspection, whatever stopped it
                shutil.copyfile(staged, failed)
            if isinstance(err, KeyboardInterrupt):
                _restore_signals()
                raise ChapterInterrupted(source.stem) from None
            if isinstance(err, DeadKernelError):
                raise ChapterFailed(f"chapter {source.stem}: its kernel died ({_memory_clue(terminal.peak_bytes)}); "
                                    f"what it ran is kept in {failed}") from None
            if isinstance(err, papermill.PapermillExecutionError):
                raise _cell_failed(source, paired, err, notebook, failed) from None
            raise
        finish_executed_notebook(staged, shown_as=notebook)

        def publish(tmp: Path) -> None:
            shutil.copyfile(staged, tmp)

        atomic_write(notebook, publish)
        failed.unlink(missing_ok=True)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return notebook


def _memory_clue(peak_bytes: int) -> str:
    """What a dead kernel's message says of memory: the peak the chapter's processes reached, against the machine's."""
    import psutil

    if not peak_bytes:
        return "the likely cause is memory; its use was not measured"
    total = psutil.virtual_memory().total
    try:  # a container's or a scheduler's limit (cgroup v2), where lower than the machine's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        total = min(total, int(limit)) if limit != "max" else total
    except (OSError, ValueError):
        pass
    reached = f"the chapter's processes had reached {peak_bytes / 2**30:.1f} GiB of {total / 2**30:.1f} GiB"
    if peak_bytes >= total / 2:
        return f"the likely cause is memory: {reached} on this machine; a smaller profile, or CWI_WORKERS=1, needs less"
    return (f"{reached} on this machine, so memory is not the clear cause (the system may have killed it for "
            "another process's memory, or something else did)")


def _stop_descendants(grace: float = 5.0) -> None:
    """Stop the runner's child processes (the kernel and its workers): SIGTERM, then SIGKILL after `grace` seconds
    (at once with no grace).

    Before the private folder goes: a kernel whose sockets vanish under it prints tracebacks into the terminal.
    """
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            child.terminate() if grace else child.kill()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=grace or 5.0)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # Ctrl-C, a scheduler's stop, a closed terminal


@contextlib.contextmanager
def _kernel_stopped_on_interrupt():
    """While a chapter runs, a stop signal first kills the kernel and its workers, then interrupts the runner.

    The kernel runs in a session of its own, so Ctrl-C (and SIGTERM or SIGHUP
    sent to the runner) reaches the runner only; left to papermill, the kernel is
    asked to shut down mid-cell and prints its tracebacks into the terminal, and
    a runner that dies leaves it running.  Killed, it says nothing; what its
    workers were writing is staging that the next run sweeps.  After a stop the
    signals stay ignored (a second Ctrl-C cannot cut the clean-up short) until
    :func:`run_chapter` has kept the notebook.  Outside the main thread (where no
    handler can be set) nothing changes.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    stopped = []

    def interrupt(signum, frame):
        for number in numbers:
            signal.signal(number, signal.SIG_IGN)
        stopped.append(signum)
        _stop_descendants(grace=0.0)
        raise KeyboardInterrupt

    previous = {number: signal.signal(number, interrupt) for number in numbers}
    try:
        yield
    finally:
        if not stopped:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _restore_signals() -> None:
    """Ctrl-C and the other stop signals back to Python's defaults (after a stopped chapter's clean-up)."""
    import signal

    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name),
                          signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL)


def sweep_private_folders() -> list[Path]:
    """Remove the private folders (sockets, connection files) of runs whose runner was killed; return them."""
    from .cache import process_running

    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*"):
        found = re.match(rf"{PRIVATE_PREFIX}(\d+)-", folder.name)
        if found and folder.is_dir() and not process_running(int(found[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


PROFILE_PAGE = Path("book") / "_profile.md"  # the profile in force, included by the first page (book/intro.md)


def write_profile_page(root: Path, reference: str) -> Path:
    """Write what the book's first page says of the profile in force (:func:`cwi.studies.describe`)."""
    from .config import get_profile
    from .studies import describe

    page = root / PROFILE_PAGE
    page.write_text(describe(get_profile(reference)))
    return page


def build_html(root: Path) -> Path:
    """Render the executed notebooks and pages as HTML with Jupyter Book; return index.html.

    The book's first page includes ``book/_profile.md``: :func:`write_profile_page` writes it
    (``python -m cwi book`` does, before the chapters run); a build without it says so there.
    """
    page = root / PROFILE_PAGE
    if page.parent.is_dir() and not page.exists():
        page.write_text("The profile of each chapter is in its execution record, at its end (this build was not "
                        "made by `python -m cwi book`, which writes this section).\n")
    exe = shutil.which("jupyter-book", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-book")
    if exe is None:
        raise FileNotFoundError("jupyter-book is not installed: pip install -r requirements.txt")
    # Warnings are errors (-W), references are checked (-n), and every warning is listed (--keep-going):
    # a broken {eq}, {cite} or cross-reference fails the build instead of rendering as text.
    result = subprocess.run([exe, "build", str(root), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    if result.returncode != 0:
        warnings = [line for line in (result.stdout + result.stderr).splitlines() if "WARNING" in line or "ERROR" in line]
        raise RuntimeError("jupyter-book build failed (warnings are errors):\n" + "\n".join(warnings[-40:])
                           + f"\n{result.stderr[-2000:]}")
    return root / "_build" / "html" / "index.html"


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def pin_threads() -> int:
    """Set the chapter kernels' torch threads (``OMP_NUM_THREADS``) unless the user did; return the number.

    One intra-op thread per usable CPU, no more than torch's own default (the
    physical cores): on 2 cores, 2 threads trained 1.6x and attributed 1.3-2x
    faster than 1 (README, "Threads").  torch's default alone counts the host's
    cores, which oversubscribes a container limited to fewer.  The chapters run
    eager PyTorch, which has no inter-op parallel work, so inter-op threads stay
    at torch's default.
    """
    if not os.environ.get("OMP_NUM_THREADS"):
        import torch

        os.environ["OMP_NUM_THREADS"] = str(min(usable_cpus(), torch.get_num_threads()))
    return int(os.environ["OMP_NUM_THREADS"])


def _run(sources: list[Path], profile: str) -> None:
    from .config import get_profile

    threads = pin_threads()
    name = get_profile(profile).name
    label = name if name == profile else f"{name}, {profile}"  # a study: its name and its file
    for number, source in enumerate(sources, 1):
        print(f"[{number}/{len(sources)}] {source.name} (profile {label}, {threads} torch threads)", flush=True)
        start = time.perf_counter()
        run_chapter(source, profile)
        print(f"[{number}/{len(sources)}] {source.name} done in {time.perf_counter() - start:.1f} s", flush=True)


def lab_environment(root: Path) -> dict[str, str]:
    """The environment for JupyterLab on this project: its ``jupyter/`` folder on ``JUPYTER_CONFIG_PATH``.

    ``jupyter/labconfig/default_setting_overrides.json`` makes Jupytext's notebook
    view the default viewer of Python files, so a double click on a ``book/*.py``
    chapter opens it as a notebook; the user's own JupyterLab settings still win.
    """
    environment = dict(os.environ)
    paths = [str(root / "jupyter")] + [p for p in environment.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    environment["JUPYTER_CONFIG_PATH"] = os.pathsep.join(paths)
    return environment


def profile_reference(args: argparse.Namespace) -> str:
    """The profile the command line names, checked whole before any work: a study file's path made absolute.

    Chapters run with ``book/`` as working directory and Dask workers elsewhere,
    so a relative study path is resolved here.  A study file that does not
    validate raises its :class:`cwi.studies.StudyError` now, before anything is
    trained or cached.
    """
    from .config import get_profile

    profile = get_profile(args.profile)
    if getattr(args, "dry_run", False):
        profile = get_profile(profile.reference + DRY_RUN)
    return profile.reference  # a study's: its absolute path


def _check_counts(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line's counts, before any work (``None``: nothing)."""
    for option in ("workers", "torch_threads"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            return f"--{option.replace('_', '-')} must be at least 1, got {value}"
    return None


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="on an error, print its traceback too")
    parser = argparse.ArgumentParser(prog="python -m cwi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder holding _toc.yml (default: .)")
    commands = parser.add_subparsers(dest="command", required=True)
    profiles = argparse.ArgumentParser(add_help=False)
    profiles.add_argument("--profile", default="default",
                          help=f"a built-in profile ({', '.join(sorted(PROFILES))}) or a study file "
                               "(study.toml: README, 'Your own encoders'); default: default")
    profiles.add_argument("--dry-run", action="store_true",
                          help="the profile's whole code path (its models, every chapter) at the smoke profile's sizes")
    book = commands.add_parser("book", parents=[common, profiles],
                               help="execute every chapter of _toc.yml, then render the HTML book")
    book.add_argument("--no-html", action="store_true", help="execute the chapters only")
    run = commands.add_parser("run", parents=[common, profiles], help="execute one chapter")
    run.add_argument("chapter", help="chapter name or path, e.g. 03_statistics")
    commands.add_parser("chapters", help="list the chapters in TOC order")
    lab = commands.add_parser("lab", parents=[profiles],
                              help="open the chapters in JupyterLab (a double click opens one as a notebook)")
    lab.add_argument("arguments", nargs=argparse.REMAINDER, help="passed on to jupyter lab")
    attribute = commands.add_parser(
        "attribute", parents=[common, profiles],
        help="compute the profile's word weights in shards on a Dask cluster (the book then reads them)")
    attribute.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster); "
                                               "checked before any work")
    attribute.add_argument("--workers", type=int, default=2,
                           help="processes of the local cluster (default 2, at least 1)")
    attribute.add_argument("--models", nargs="+", help="only these models (default: attribution.models)")
    attribute.add_argument("--torch-threads", type=int,
                           help="torch threads per worker (default: the cores shared out locally; set it for a cluster)")
    from .explain_cli import add_parser as add_explain

    add_explain(commands, [common])
    store = commands.add_parser("cache", parents=[common], help="the artefact store (CWI_CACHE_DIR)")
    store.add_argument("action", choices=["adopt"],
                       help="adopt: record the sha256 of every artefact stored before checksums were kept, as it is "
                            "now (a cache you trust), and mark the cache: from then on one without is damage")
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    # A warning (a study's Hub model without a revision, say) is one line for the user, not a source location.
    warnings.formatwarning = lambda message, category, *_: f"warning: {message}\n"
    problem = _check_counts(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    # Chapters run with book/ as working directory: pin relative folders to ours first.
    for variable in ("CWI_DATA_DIR", "CWI_CACHE_DIR"):
        if os.environ.get(variable):
            os.environ[variable] = str(Path(os.environ[variable]).expanduser().resolve())

    try:
        sources = chapter_sources(root) if args.command in ("book", "run", "chapters") else []
        if args.command in ("book", "run", "attribute", "lab"):
            args.profile = profile_reference(args)
        if args.command in ("book", "run", "attribute"):
            from .cache import cache_dir, ready, sweep_staging

            unchecked = ready()  # a cache that cannot be written fails now, not after the training
            if unchecked:
                many = (f"{len(unchecked)} artefacts in {cache_dir()} were" if len(unchecked) > 1
                        else f"1 artefact in {cache_dir()} ({unchecked[0].relative_to(cache_dir())}) was")
                print(f"note: {many} stored before checksums were kept: "
                      "each is adopted (its sha256 recorded) when first read; `python -m cwi cache adopt` records "
                      "them all now", flush=True)
            sweep_staging()  # unfinished writes of killed runs
            sweep_private_folders()
        if args.command == "explain":
            from .explain_cli import run as explain

            explain(args)
        elif args.command == "cache":
            from .cache import adopt, cache_dir
            from .runs import RUN_FILE
            from .train import HISTORY_FILE

            adopted = adopt(last_files=(RUN_FILE, HISTORY_FILE))
            print(f"{len(adopted)} artefact{'s' * (len(adopted) != 1)} of {cache_dir()} adopted (their sha256 "
                  "recorded as they are now); "
                  "the cache is marked: from now on an artefact without its sha256 is damage and is computed again")
        elif args.command == "chapters":
            print("\n".join(str(s.relative_to(root)) for s in sources))
        elif args.command == "lab":
            jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
            environment = {**lab_environment(root), PROFILE_ENVIRONMENT: args.profile}
            return subprocess.call([jupyter, "lab", str(root / "book"), *args.arguments], env=environment)
        elif args.command == "attribute":
            from .shards import ShardsFailed, run as run_shards

            try:
                report = run_shards(args.profile, args.scheduler, args.workers, args.models,
                                    torch_threads=args.torch_threads, announce=True)
            except ShardsFailed as err:
                raise RuntimeError(str(err)) from None
            counts = report["status"].value_counts()
            print(f"{len(report)} shards: {counts.get('computed', 0)} computed "
                  f"({report['seconds'].sum():.1f} s of work), {counts.get('cached', 0)} already in the cache")
        elif args.command == "run":
            wanted = Path(args.chapter).stem
            matches = [s for s in sources if s.stem == wanted]
            if not matches:
                names = ", ".join(s.stem for s in sources)
                raise FileNotFoundError(f"no chapter {args.chapter!r} in _toc.yml; chapters: {names}")
            _run(matches, args.profile)
        else:
            start = time.perf_counter()
            write_profile_page(root, args.profile)
            _run(sources, args.profile)
            if not args.no_html:
                print("rendering the HTML book with Jupyter Book ...", flush=True)
                index = build_html(root)
                print(f"book written to {index}")
            print(f"total {time.perf_counter() - start:.1f} s")
    except KeyboardInterrupt as err:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # the stopped kernel's pending task, at exit
        where = f": {err.chapter}" if isinstance(err, ChapterInterrupted) else ""
        again = "; rerun to continue from the cache" if args.command in ("book", "run", "attribute") else ""
        print(f"\ninterrupted{where}{again}", file=sys.stderr)
        return 130
    except (ChapterFailed, OSError, RuntimeError, ValueError) as err:
        # OSError: a full disk, a folder that cannot be written, a scheduler out of reach; its
        # message names the path or the address. The traceback is for --verbose.
        if verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
