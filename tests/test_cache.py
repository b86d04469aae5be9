"""cwi.cache: keys, hits and misses, atomic writes, concurrent writers, checksums, a writable and marked cache."""

import json
import os
import stat
import tempfile

import pandas as pd
import pytest

from cwi import cache, integrity


def test_key_hash_is_stable_and_order_free():
    assert cache.key_hash({"a": 1, "b": [1, 2]}) == cache.key_hash({"b": [1, 2], "a": 1})
    assert cache.key_hash({"a": 1}) != cache.key_hash({"a": 2})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        cache.key_hash({"a": object()})


def test_fingerprint_separates_sentences():
    assert cache.fingerprint_texts(["ab"]) != cache.fingerprint_texts(["a", "b"])
    assert cache.fingerprint_texts(["a", "b"]) != cache.fingerprint_texts(["b", "a"])


def test_cached_frame_hits_and_misses():
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            frame = pd.DataFrame({"x": [value]}, index=pd.Index(["w"], name="word"))
            frame.attrs["note"] = "kept"
            return frame

        return run

    first = cache.cached_frame("test_kind", {"v": 1}, compute(1))
    second = cache.cached_frame("test_kind", {"v": 1}, compute(99))
    third = cache.cached_frame("test_kind", {"v": 2}, compute(2))
    assert calls == [1, 2]
    assert second["x"].tolist() == [1] and second.attrs["note"] == "kept"
    assert third["x"].tolist() == [2]
    assert first.attrs["cache_path"] == second.attrs["cache_path"] != third.attrs["cache_path"]


def test_failed_compute_leaves_nothing_behind():
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.cached_frame("test_kind", {"v": "boom"}, boom)
    assert not cache.artefact_path("test_kind", {"v": "boom"}, ".parquet").exists()


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "artefact.txt"
    cache.atomic_write(target, lambda tmp: tmp.write_text("old"))

    def half_write(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.atomic_write(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["artefact.txt"]


@pytest.fixture
def unmarked_cache(tmp_path, monkeypatch):
    """A cache of its own, never marked as checksummed (the session's may be: a runner test marks it)."""
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "unmarked"))
    return tmp_path / "unmarked"


def test_damaged_artefact_is_recomputed(unmarked_cache):
    path = cache.artefact_path("test_kind", {"v": "damaged"}, ".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not parquet")
    frame = cache.cached_frame("test_kind", {"v": "damaged"}, lambda: pd.DataFrame({"x": [3]}))
    assert frame["x"].tolist() == [3]
    assert pd.read_parquet(path)["x"].tolist() == [3]


# --- faults: two writers, killed writers, flipped bytes, caches from before checksums --------------


def flip_byte(path, offset=None):
    """Flip one bit of one byte of `path` in place (its middle byte unless `offset`), as a bad disk would."""
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    integrity.forget()  # a new process would hash it again; this one would trust its memo


def test_the_first_of_two_folder_writers_wins_and_the_second_finishes(tmp_path, caplog):
    target = tmp_path / "checkpoints" / "run"
    cache.atomic_write(target, lambda folder: (folder / "weights.bin").write_bytes(b"first"), folder=True)
    with caplog.at_level("INFO", logger="cwi.cache"):  # before: OSError [Errno 39] Directory not empty
        assert cache.atomic_write(target, lambda folder: (folder / "weights.bin").write_bytes(b"second"),
                                  folder=True) == target
    assert (target / "weights.bin").read_bytes() == b"first"
    assert "completed by another run first" in caplog.text
    assert sorted(p.name for p in target.parent.iterdir()) == ["run"]  # the second copy is gone
    manifest = json.loads((target / integrity.MANIFEST).read_text())
    assert list(manifest["files"]) == ["weights.bin"]


def test_a_cached_value_computed_twice_at_once_is_stored_once_and_read_back():
    key = {"v": "race"}
    path = cache.artefact_path("test_kind", key, ".parquet")

    def compute():  # another run stores the same key while this one computes
        cache.atomic_write(path, lambda tmp: pd.DataFrame({"x": [1.0]}).to_parquet(tmp), keep_existing=True)
        return pd.DataFrame({"x": [2.0]})

    frame = cache.cached_frame("test_kind", key, compute)
    assert frame["x"].tolist() == [1.0]  # the first writer's copy is the one every run returns
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == integrity.file_sha256(path)
    assert [p.name for p in path.parent.glob(".*")] == []


def test_the_sweep_removes_what_dead_writers_left_and_keeps_live_ones(tmp_path, caplog):
    import os
    import socket
    import subprocess
    import sys
    import time

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    kind = tmp_path / "checkpoints"
    (kind / "0123456789abcdef").mkdir(parents=True)  # a finished artefact: never touched
    killed = kind / f".0123456789abcdef.stage-{host}-{int(dead.stdout)}-abc123"
    live = kind / f".fedcba9876543210.stage-{host}-{os.getpid()}-def456"
    old = kind / ".aaaaaaaaaaaaaaaa.k2j4h5g6"  # the old tempfile naming: removed once stale
    young = kind / ".bbbbbbbbbbbbbbbb.q9w8e7r6"  # ... and reported while it may be in use
    inner = kind / "0123456789abcdef" / f".cwi_manifest.json.stage-{host}-{int(dead.stdout)}-x1.tmp"
    for folder in (killed, live, old, young):
        (folder / "step-000000").mkdir(parents=True)
    inner.write_text("{")
    stale = time.time() - cache.STALE_AFTER - 60
    os.utime(old, (stale, stale))
    os.utime(old / "step-000000", (stale, stale))
    with caplog.at_level("WARNING", logger="cwi.cache"):
        removed = cache.sweep_staging(tmp_path)
    assert sorted(removed) == sorted([killed, old, inner])
    assert live.exists() and young.exists() and (kind / "0123456789abcdef").exists()
    assert str(young) in caplog.text and str(live) not in caplog.text


@pytest.mark.parametrize("kind, column", [("word_statistics", "information_gain_corrected"),
                                          ("word_weights", "weight")])
def test_a_flipped_byte_in_a_stored_table_is_found_named_and_recomputed(caplog, kind, column):
    """Before: the table still parsed and was served (a corrected information gain of -1.1e182)."""
    import numpy as np

    calls = []
    values = np.random.default_rng(0).normal(size=200)

    def compute():
        calls.append(1)
        return pd.DataFrame({column: values}, index=pd.Index([f"w{i}" for i in range(200)]))

    key = {"v": "flip"}
    first = cache.cached_frame(kind, key, compute)
    path = cache.artefact_path(kind, key, ".parquet")
    at = path.read_bytes().index(values[100].tobytes())  # a stored value's bytes: the file still parses
    flip_byte(path, at + 7)  # the exponent's byte: the value is off by orders of magnitude
    assert pd.read_parquet(path)[column].tolist() != first[column].tolist()
    with caplog.at_level("WARNING", logger="cwi.cache"):
        again = cache.cached_frame(kind, key, compute)
    assert len(calls) == 2 and again.equals(first)  # recomputed, never served
    assert str(path) in caplog.text and "does not match the sha256" in caplog.text
    assert cache.cached_frame(kind, key, compute).equals(first) and len(calls) == 2


def test_a_damaged_key_record_means_recomputing(caplog):
    calls = []
    key = {"v": "record"}
    cache.cached_frame("word_weights", key, lambda: calls.append(1) or pd.DataFrame({"weight": [1.0]}))
    record = cache.artefact_path("word_weights", key, ".parquet").with_suffix(".json")
    record.write_text(record.read_text()[:-20])  # truncated
    with caplog.at_level("WARNING", logger="cwi.cache"):
        cache.cached_frame("word_weights", key, lambda: calls.append(1) or pd.DataFrame({"weight": [1.0]}))
    assert len(calls) == 2 and str(record) in caplog.text


def test_an_artefact_from_before_checksums_is_adopted_not_recomputed(unmarked_cache, caplog):
    key = {"v": "legacy"}
    path = cache.artefact_path("word_statistics", key, ".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": [7]}).to_parquet(path)  # as the cache before this change wrote it:
    path.with_suffix(".json").write_text(json.dumps({"kind": "word_statistics", "key": key}))  # no sha256
    stamp = path.stat().st_mtime_ns

    def must_not_compute():
        raise AssertionError("a stored artefact without a checksum must be adopted, not recomputed")

    with caplog.at_level("INFO", logger="cwi.cache"):
        assert cache.cached_frame("word_statistics", key, must_not_compute)["x"].tolist() == [7]
    assert "before checksums were kept" in caplog.text
    assert path.stat().st_mtime_ns == stamp and path.name == f"{cache.key_hash(key)}.parquet"
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == integrity.file_sha256(path)
    flip_byte(path, 0)  # from now on it is checked
    with caplog.at_level("WARNING", logger="cwi.cache"), pytest.raises(AssertionError, match="adopted"):
        cache.cached_frame("word_statistics", key, must_not_compute)
    assert "does not match the sha256" in caplog.text and not path.exists()


def test_a_folder_from_before_manifests_is_adopted_then_checked(tmp_path, caplog):
    folder = tmp_path / "checkpoints" / "0123456789abcdef"
    (folder / "step-000001").mkdir(parents=True)
    (folder / "step-000001" / "model.safetensors").write_bytes(b"weights" * 100)
    (folder / "cwi_run.json").write_text("{}")
    with caplog.at_level("INFO", logger="cwi.cache"):
        assert cache.folder_intact(folder, "cwi_run.json", last_file="cwi_run.json")
    assert "before checksums were kept" in caplog.text
    manifest = json.loads((folder / integrity.MANIFEST).read_text())["files"]
    assert sorted(manifest) == ["cwi_run.json", "step-000001/model.safetensors"]
    assert cache.folder_intact(folder, "step-000001")
    flip_byte(folder / "step-000001" / "model.safetensors")
    assert cache.folder_intact(folder, "cwi_run.json")  # only what is asked for is read
    with caplog.at_level("WARNING", logger="cwi.cache"):
        assert not cache.folder_intact(folder, "step-000001")
    assert f"{folder / 'step-000001' / 'model.safetensors'} does not match" in caplog.text
    assert not folder.exists() and list(folder.parent.iterdir()) == []  # removed, to be computed again
    unfinished = tmp_path / "checkpoints" / "fedcba9876543210"
    (unfinished / "step-000000").mkdir(parents=True)
    assert not cache.folder_intact(unfinished, last_file="cwi_run.json") and not unfinished.exists()


def test_a_file_is_hashed_once_per_process_while_it_is_unchanged(tmp_path, monkeypatch):
    import hashlib
    import os

    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights" * 1000)
    assert integrity.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()

    def must_not_hash():
        raise AssertionError("hashed again")

    monkeypatch.setattr(integrity.hashlib, "sha256", must_not_hash)
    integrity.file_sha256(path)  # the memo: no second read
    os.utime(path, ns=(1, 1))  # its state changed: hashed again
    with pytest.raises(AssertionError, match="hashed again"):
        integrity.file_sha256(path)


def test_in_a_checksummed_cache_a_lost_record_or_manifest_is_damage_and_recomputed(tmp_path, monkeypatch, caplog):
    """Before: the table was served with its wrong sha256 recorded as the truth, and one INFO line said so."""
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "cache"))
    terminal = tmp_path / "terminal.log"
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(terminal))  # what the runner prints
    assert cache.ready() == [] and (tmp_path / "cache" / cache.MARKER).is_file()  # a new cache is marked
    calls = []
    key = {"v": "lost"}
    first = cache.cached_frame("word_statistics", key, lambda: calls.append(1) or pd.DataFrame({"x": [1.0, 2.0]}))
    path = cache.artefact_path("word_statistics", key, ".parquet")
    flip_byte(path, path.read_bytes().index(pd.Series([2.0]).to_numpy().tobytes()) + 7)  # 2.0 becomes 2**-255
    path.with_suffix(".json").unlink()  # the record gone with the damage
    old = path.stat().st_mtime - 3600  # not an artefact another run is recording right now
    os.utime(path, (old, old))
    with caplog.at_level("WARNING", logger="cwi.cache"):
        again = cache.cached_frame("word_statistics", key, lambda: calls.append(1) or pd.DataFrame({"x": [1.0, 2.0]}))
    assert len(calls) == 2 and again.equals(first)
    assert f"{path} has no sha256 recorded" in caplog.text
    lines = terminal.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cache: {path} has no sha256 recorded")
    folder = tmp_path / "cache" / "checkpoints" / "0123456789abcdef"
    cache.atomic_write(folder, lambda staged: (staged / "cwi_run.json").write_text("{}"), folder=True)
    assert cache.folder_intact(folder, last_file="cwi_run.json")
    (folder / integrity.MANIFEST).unlink()
    assert not cache.folder_intact(folder, last_file="cwi_run.json") and not folder.exists()
    assert f"cache: {folder} has lost its manifest" in terminal.read_text().splitlines()[-1]


def test_a_cache_from_before_checksums_is_adopted_on_read_or_at_once_then_marked(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CWI_CACHE_DIR", str(root))
    key = {"v": "legacy"}
    path = cache.artefact_path("word_statistics", key, ".parquet")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"x": [7]}).to_parquet(path)
    path.with_suffix(".json").write_text(json.dumps({"kind": "word_statistics", "key": key}))  # no sha256
    folder = root / "checkpoints" / "0123456789abcdef"
    folder.mkdir(parents=True)
    (folder / "cwi_run.json").write_text("{}")
    assert cache.ready() == [folder, path] and not cache.checksummed(root)  # unmarked: adoption still holds
    assert sorted(cache.adopt(last_files=("cwi_run.json",))) == sorted([folder, path]) and cache.checksummed(root)
    assert json.loads(path.with_suffix(".json").read_text()) == {"kind": "word_statistics", "key": key,
                                                                 "sha256": integrity.file_sha256(path)}
    assert integrity.verify(folder) and cache.ready() == []


def test_a_cache_that_cannot_be_written_is_refused_before_any_work_naming_the_folder(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CWI_CACHE_DIR", str(root))
    (root / "checkpoints").mkdir(parents=True)
    blocked = str(root / "checkpoints")
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if str(dir) == blocked:
            raise PermissionError(13, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    with pytest.raises(cache.CacheNotWritable) as info:
        cache.ready()
    assert str(info.value).startswith(f"the cache folder {blocked}, in the cache {root} (set by CWI_CACHE_DIR) "
                                      "cannot be written: Permission denied; make it writable")
    assert not (root / cache.MARKER).exists()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(cache.CacheNotWritable, match="cannot be created: Not a directory"):
        cache.ready()


def test_artefacts_get_the_modes_of_ordinary_files_and_folders_under_the_umask(tmp_path):
    """Before: files 0600 (tempfile's), folders 0755, whatever the umask: a cache could not be shared by a group."""
    previous = os.umask(0o002)
    try:
        file = cache.atomic_write(tmp_path / "table.parquet", lambda tmp: tmp.write_text("x"))
        folder = cache.atomic_write(tmp_path / "run", lambda tmp: (tmp / "a").write_text("y"), folder=True)
        assert stat.S_IMODE(file.stat().st_mode) == 0o664 and stat.S_IMODE(folder.stat().st_mode) == 0o775
        assert stat.S_IMODE((folder / integrity.MANIFEST).stat().st_mode) == 0o664
    finally:
        os.umask(previous)


def test_a_record_a_concurrent_writer_is_about_to_write_is_awaited_not_taken_for_damage(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv("CWI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(tmp_path / "terminal.log"))
    cache.ready()
    key = {"v": "racing"}
    path = cache.artefact_path("word_statistics", key, ".parquet")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"x": [3]}).to_parquet(path)  # renamed into place by another run, its record not yet written
    late = threading.Timer(0.5, lambda: path.with_suffix(".json").write_text(json.dumps(
        {"kind": "word_statistics", "key": key, "sha256": integrity.file_sha256(path)})))
    late.start()
    try:
        value = cache.cached_frame("word_statistics", key, lambda: pytest.fail("a valid artefact was recomputed"))
    finally:
        late.join()
    assert value["x"].tolist() == [3] and not (tmp_path / "terminal.log").exists()


def test_an_export_is_written_with_its_record_and_adopt_leaves_an_unfinished_folder_out(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CWI_CACHE_DIR", str(root))
    monkeypatch.setenv("CWI_PROGRESS_FILE", str(tmp_path / "terminal.log"))
    path = cache.export("correlations", {"v": 1}, ".csv", lambda tmp: tmp.write_text("a,b\n1,2\n"))
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == integrity.file_sha256(path)
    finished, unfinished = root / "checkpoints" / "0123456789abcdef", root / "checkpoints" / "fedcba9876543210"
    for folder in (finished, unfinished):
        (folder / "step-000010").mkdir(parents=True)
        (folder / "step-000010" / "model.safetensors").write_bytes(b"w" * 64)
    (finished / "cwi_run.json").write_text("{}")
    assert cache.adopt(last_files=("cwi_run.json",)) == [finished]
    assert integrity.verify(finished) and not unfinished.exists()
    assert f"cache: {unfinished} holds none of cwi_run.json" in (tmp_path / "terminal.log").read_text()
