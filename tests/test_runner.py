"""The runner under faults: two runs at once, a run killed mid-write, a failing chapter, bad command lines."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from cwi import integrity
from cwi.__main__ import PRIVATE_PREFIX, ChapterFailed, run_chapter, sweep_private_folders

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "02_finetuning"  # the chapter that trains: checkpoints, runs, their manifests


def checkout(destination: Path) -> Path:
    """A copy of the book's sources (no executed notebooks): what a run needs."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "_toc.yml", destination / "_toc.yml")
    shutil.copytree(ROOT / "book", destination / "book", ignore=shutil.ignore_patterns("*.ipynb", "_build"))
    return destination


def start(root: Path, cache: Path, log: Path, *arguments: str) -> subprocess.Popen:
    """`python -m cwi --root ROOT run CHAPTER --profile smoke` on `cache`, its terminal written to `log`."""
    environment = {**os.environ, "CWI_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "cwi", "--root", str(root), *(arguments or ("run", CHAPTER, "--profile", "smoke"))]
    with open(log, "w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=environment)


def glued(notebook: Path) -> dict:
    """The values a chapter glued, by name (what tests/test_book.py checks), read from an executed notebook."""
    from test_book import glued as glued_values

    return glued_values(json.loads(notebook.read_text()))


def left_behind(root: Path, cache: Path, pids: list[int]) -> list[Path]:
    """What runs must not leave: sockets in the checkout, staging in the cache, private folders of `pids`."""
    sockets = [path for path in root.rglob("*") if path.is_socket()]
    staging = [path for path in [*cache.glob("*/.*"), *cache.glob("*/*/.*")]]
    private = [path for pid in pids for path in Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}{pid}-*")]
    return sockets + staging + private + list(root.glob("book/*.failed.ipynb"))


@pytest.fixture(scope="module")
def two_runs_at_once(data_dir, tmp_path_factory):
    """Two runs of the Fine-tuning chapter from one checkout on one empty cache, started together.

    Each run's glued values are read as it exits (both write the same ``book/<chapter>.ipynb``).
    """
    root = checkout(tmp_path_factory.mktemp("checkout"))
    cache = tmp_path_factory.mktemp("cache")
    logs = [root / f"run{i}.log" for i in range(2)]
    runs = [start(root, cache, log) for log in logs]
    notebook = root / "book" / f"{CHAPTER}.ipynb"
    values, deadline = {}, time.time() + 1200
    while len(values) < 2:
        assert time.time() < deadline, "two smoke runs of the Fine-tuning chapter took over 20 minutes"
        for i, run in enumerate(runs):
            if i not in values and run.poll() is not None:
                values[i] = glued(notebook) if run.returncode == 0 else None
        time.sleep(0.1)
    return root, cache, runs, [log.read_text() for log in logs], [values[0], values[1]]


def test_two_runs_on_one_cache_both_finish_alike_and_leave_nothing(two_runs_at_once):
    """Before: the second to finish failed (Errno 39), their kernels shared sockets in book/."""
    root, cache, runs, logs, values = two_runs_at_once
    for run, log in zip(runs, logs):
        assert run.returncode == 0, log[-3000:]
        assert "Traceback" not in log and "Invalid Signature" not in log and "[IPKernelApp] WARNING" not in log
    # Both trained the masked-LM base at once, so one of them finished it second and used the other's
    # (before: OSError [Errno 39] Directory not empty, and its chapter failed).
    assert all(re.search(r"masked-LM[^\n]*: [\d,]+ steps to do", log) for log in logs), "the two runs did not race"
    assert values[0] == values[1] and values[0]["search"]
    assert left_behind(root, cache, [run.pid for run in runs]) == []
    folders = [path for path in (cache / "checkpoints").iterdir()]
    assert folders and all((folder / integrity.MANIFEST).exists() for folder in folders)
    for folder in folders:  # what appeared is whole
        assert integrity.verify(folder)


def test_a_run_killed_while_writing_a_checkpoint_recovers_on_the_next(two_runs_at_once, tmp_path):
    """kill -9 (the runner and its kernel) mid-write, then a rerun: only what was missing is computed.

    The cache is the two runs' own, less the fine-tuning run with the most snapshots: the
    killed run trains it again, and is killed while that run's folder is being written.
    """
    root = checkout(tmp_path / "checkout")
    cache = tmp_path / "cache"
    shutil.copytree(two_runs_at_once[1], cache)
    trained = [folder for folder in (cache / "checkpoints").iterdir() if (folder / "cwi_run.json").exists()]
    # The run with the most snapshots (then the latest): the longest window between its first snapshot and its end.
    missing = max(trained, key=lambda folder: (len(list(folder.glob("step-*"))),
                                               (folder / "cwi_run.json").stat().st_mtime_ns))
    shutil.rmtree(missing)
    killed = start(root, cache, tmp_path / "killed.log")
    staged, deadline = None, time.time() + 900
    while staged is None:
        assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.time() < deadline
        staged = next((path for path in (cache / "checkpoints").glob(f".{missing.name}.stage-*")
                       if any(step.is_dir() for step in path.glob("step-*"))), None)  # its first snapshot is in
        time.sleep(0.05)
    family = [killed.pid] + [child.pid for child in psutil.Process(killed.pid).children(recursive=True)]
    for pid in family:
        os.kill(pid, 9)
    killed.wait()
    psutil.wait_procs([p for p in map(_process, family) if p], timeout=10)
    assert staged.exists() and not missing.exists(), "the fault was not injected: nothing was being written"
    finished = {path: (path.stat().st_ino, path.stat().st_mtime_ns)
                for path in cache.rglob("*") if path.is_file() and not any(p.startswith(".") for p in
                                                                            path.relative_to(cache).parts)}

    rerun = start(root, cache, tmp_path / "rerun.log")
    assert rerun.wait(timeout=900) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    for path, (inode, mtime) in finished.items():  # what was whole is used, not redone
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime), path
    assert integrity.verify(missing)  # trained again, whole
    assert glued(root / "book" / f"{CHAPTER}.ipynb") == two_runs_at_once[4][0]  # as the runs that were not killed
    assert left_behind(root, cache, family + [rerun.pid]) == []


def _process(pid: int):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_a_failing_chapter_keeps_the_last_good_notebook_and_its_kernel_leaves_no_socket(tmp_path, capsys):
    source = tmp_path / "book" / "97_twice.py"
    source.parent.mkdir()
    source.write_text('# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nprint("good run")\n')
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{int(dead.stdout)}-"))  # a killed runner's
    notebook = run_chapter(source, "smoke", progress=False)
    good = notebook.read_text()
    assert "good run" in good and json.loads(good)["metadata"]["papermill"]["input_path"] == str(notebook)
    source.write_text(source.read_text() + '\n# %%\nraise ValueError("planted failure")\n')
    with pytest.raises(ChapterFailed) as info:
        run_chapter(source, "smoke", progress=False)
    failed = source.with_suffix(".failed.ipynb")
    assert f"The executed notebook with the full traceback is {failed}" in str(info.value)
    assert "97_twice.ipynb, of the last run that succeeded, is left as it was" in str(info.value)
    assert notebook.read_text() == good  # before: overwritten before execution, so lost
    assert "planted failure" in failed.read_text()
    assert [path for path in source.parent.iterdir() if path.is_socket()] == []  # before: kernel-ipc-* here
    assert list(Path(tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}{os.getpid()}-*")) == []
    # Another lane's `cwi book` may sweep it first (it sweeps every dead runner's folder): what counts is that it is gone.
    swept = sweep_private_folders()
    assert not stale.exists() and all(not path.exists() for path in swept)
    source.write_text(source.read_text().replace('raise ValueError("planted failure")', "x = 1"))
    run_chapter(source, "smoke", progress=False)
    assert not failed.exists()  # a success clears the failure's notebook


def one_line(result: subprocess.CompletedProcess) -> str:
    """The error line of a failed command: its last, the only one saying ``error:``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


def test_bad_counts_fail_at_once_with_one_line(tmp_path):
    """Before: --workers 0 loaded the models, then died of OverflowError after minutes."""
    for option in ("--workers", "--torch-threads"):
        begin = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "cwi", "--root", str(ROOT), "attribute", "--profile", "smoke",
                                 option, "0"], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CWI_CACHE_DIR": str(tmp_path)})
        assert result.returncode == 2 and time.perf_counter() - begin < 30
        assert one_line(result) == f"error: {option} must be at least 1, got 0"


def test_a_dead_scheduler_fails_before_any_model_with_one_line_naming_it(tmp_path):
    """Before: models were loaded (the book's trained) and an estimate run before the scheduler was tried."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    begin = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "cwi", "--root", str(ROOT), "attribute", "--profile", "smoke",
                             "--scheduler", address], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CWI_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 1 and time.perf_counter() - begin < 60
    assert re.match(rf"error: no Dask scheduler answered at {re.escape(address)}", one_line(result))
    assert not (tmp_path / "checkpoints").exists()  # nothing trained or loaded first


def test_an_os_error_ends_a_run_with_one_line_naming_the_path_and_verbose_adds_the_traceback(tmp_path):
    root = tmp_path / "checkout"
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/96_tiny\n")
    (root / "book" / "96_tiny.py").write_text('# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nx = 1\n')
    (root / "book" / "96_tiny.ipynb").mkdir()  # where the executed notebook goes: the rename fails
    command = [sys.executable, "-m", "cwi", "--root", str(root), "run", "96_tiny", "--profile", "smoke"]
    environment = {**os.environ, "CWI_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 1
    assert one_line(result).startswith("error: [Errno 21] Is a directory") and str(root / "book") in result.stderr
    verbose = subprocess.run(command + ["--verbose"], capture_output=True, text=True, timeout=300, env=environment)
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("error: [Errno 21] Is a directory")


def tiny_book(root: Path, name: str, code: str) -> Path:
    """A checkout of one chapter `name` whose code cell is `code`."""
    (root / "book").mkdir(parents=True)
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/{name}\n")
    (root / "book" / f"{name}.py").write_text(f'# %% tags=["parameters"]\nprofile = "default"\n\n# %%\n{code}\n')
    return root


def test_a_cache_that_cannot_be_written_is_refused_in_seconds_with_one_line_and_nothing_computed(tmp_path):
    """Before: the Fine-tuning chapter trained a masked-LM base, then died of PermissionError on checkpoints/."""
    cache_root = tmp_path / "cache"
    blocked = cache_root / "checkpoints"
    blocked.mkdir(parents=True)
    # Root ignores file modes: the folder is made immutable instead (ext4's attribute), as a read-only mount would be.
    as_root = os.geteuid() == 0
    subprocess.run(["chattr", "+i", str(blocked)] if as_root else ["chmod", "555", str(blocked)], check=True)
    try:
        before = sorted(cache_root.rglob("*"))
        begin = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "cwi", "--root", str(ROOT), "run", CHAPTER, "--profile", "smoke"],
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, "CWI_CACHE_DIR": str(cache_root)})
        seconds = time.perf_counter() - begin
    finally:
        subprocess.run(["chattr", "-i", str(blocked)] if as_root else ["chmod", "755", str(blocked)], check=True)
    assert result.returncode == 1 and seconds < 30, (result.returncode, seconds)
    assert one_line(result) == (f"error: the cache folder {blocked}, in the cache {cache_root} (set by CWI_CACHE_DIR) "
                                f"cannot be written: {'Operation not permitted' if as_root else 'Permission denied'}; "
                                f"make it writable (chmod -R u+w {cache_root}), or set CWI_CACHE_DIR to a folder you "
                                "can write")
    assert sorted(cache_root.rglob("*")) == before and "[1/1]" not in result.stdout  # no chapter started


def test_a_dead_kernel_ends_with_one_line_naming_chapter_memory_and_the_kept_notebook(tmp_path):
    """Before: `error: Kernel died`, and nothing else."""
    root = tiny_book(tmp_path / "checkout", "95_dies", "import os, signal\nheld = bytearray(300 * 2**20)\n"
                     "held[::4096] = b'x' * len(held[::4096])  # resident, not only reserved\n"
                     "import time; time.sleep(2.5)  # the runner polls memory each second\n"
                     "os.kill(os.getpid(), signal.SIGKILL)  # as the kernel the out-of-memory killer picks")
    result = subprocess.run([sys.executable, "-m", "cwi", "--root", str(root), "run", "95_dies", "--profile", "smoke"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "CWI_CACHE_DIR": str(tmp_path / "cache")})
    failed = root / "book" / "95_dies.failed.ipynb"
    line = one_line(result)
    assert result.returncode == 1 and line.startswith("error: chapter 95_dies: its kernel died (")
    peak = float(re.search(r"had reached ([0-9.]+) GiB of [0-9.]+ GiB", line)[1])
    assert 0.3 <= peak < 4, line  # the 300 MiB it held, and the kernel itself
    assert line.endswith(f"what it ran is kept in {failed}") and failed.exists()
    assert "Kernel died while waiting" not in result.stderr


def test_ctrl_c_stops_the_kernel_and_ends_with_one_line_and_exit_130(tmp_path):
    """Before: about 60 lines of the kernel's and the runner's tracebacks (the run itself stopped cleanly)."""
    started = tmp_path / "kernel.pid"
    root = tiny_book(tmp_path / "checkout", "96_sleeps",
                     f"import os, time\nopen({str(started)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)")
    runner = subprocess.Popen([sys.executable, "-m", "cwi", "--root", str(root), "run", "96_sleeps", "--profile",
                               "smoke"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "CWI_CACHE_DIR": str(tmp_path / "cache")})
    try:
        deadline = time.time() + 180
        while not (started.exists() and started.read_text()) and time.time() < deadline and runner.poll() is None:
            time.sleep(0.2)
        kernel = _process(int(started.read_text()))
        assert kernel is not None and kernel.is_running()
        runner.send_signal(2)  # SIGINT, what Ctrl-C sends
        _, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130
    assert stderr.strip().splitlines()[-1] == "interrupted: 96_sleeps; rerun to continue from the cache"
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert not kernel.is_running() and left_behind(root, tmp_path / "cache", [runner.pid]) == [
        root / "book" / "96_sleeps.failed.ipynb"]  # what ran so far, kept for inspection
