"""cwi.cache: keys, hits and misses, atomic writes."""

import pandas as pd
import pytest

from cwi import cache


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


def test_damaged_artefact_is_recomputed():
    path = cache.artefact_path("test_kind", {"v": "damaged"}, ".parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not parquet")
    frame = cache.cached_frame("test_kind", {"v": "damaged"}, lambda: pd.DataFrame({"x": [3]}))
    assert frame["x"].tolist() == [3]
    assert pd.read_parquet(path)["x"].tolist() == [3]
