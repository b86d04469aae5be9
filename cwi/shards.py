"""The profile's attribution in shards, on a Dask cluster: ``python -m cwi attribute``.

The ``paper`` profile attributes 13 models x 7 datasets x 1,000 sentences with
two methods: hours on one GPU.  Its word-weight tables are cut into independent
shards, one per (model, dataset, method, block of ``attribution.block_sentences``
sentences), each of them a block that :func:`cwi.pipeline.word_weight_block`
computes and stores in the keyed cache.  :func:`run` sends the shards the cache
lacks to Dask workers (a local cluster by default, any scheduler address for a
cluster, dask-jobqueue's for SLURM) and waits; the book then reads every table
from the cache, identical to a serial run with as many torch threads per
process, since the blocks are the same either way (with another thread count,
equal to float32 rounding).  A finished shard is never recomputed; a failing one is retried, then
reported by name with its error, after the others have finished.

Workers need the cache folder (``CWI_CACHE_DIR``) and the data (``CWI_DATA_DIR``)
at the same paths: on one machine they inherit them, on a cluster put both on a
shared file system.  A worker takes one GPU: the Dask worker named ``k`` uses
GPU ``k`` modulo the GPUs it sees (name the workers 0, 1, ... or set ``CWI_DEVICE``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from . import attribution, config, pipeline

__all__ = ["Shard", "ShardsFailed", "SchedulerUnreachable", "plan", "compute", "estimate", "connect", "run"]

CONNECT_TIMEOUT = 10.0  # seconds to reach a Dask scheduler, before any model is loaded


@dataclass(frozen=True)
class Shard:
    """One block of one word-weight table: the unit of distributed attribution."""

    model: str
    dataset: str
    method: str
    block: int

    def __str__(self) -> str:
        return f"{self.model} / {self.dataset} / {self.method} / block {self.block}"


class ShardsFailed(RuntimeError):
    """Some shards failed after their retries; ``failures`` maps each shard to its error."""

    def __init__(self, failures: dict[Shard, str]):
        self.failures = failures
        listed = "\n".join(f"  {shard}: {error}" for shard, error in failures.items())
        super().__init__(f"{len(failures)} shard(s) failed (the others are in the cache; rerun to retry these):\n"
                         f"{listed}")


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler named by its address did not answer (an ``OSError``)."""


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT):
    """A ``distributed.Client`` of the scheduler at `scheduler`, or :class:`SchedulerUnreachable` within `timeout` s.

    A TCP or TLS address is probed with a plain connection first, so a refused
    one fails at once rather than after Dask's retries.
    """
    import socket

    from distributed import Client
    from distributed.comm.addressing import parse_address, parse_host_port

    def unreachable(err: Exception) -> SchedulerUnreachable:
        reason = f"{type(err).__name__}: {err}"[:200]
        return SchedulerUnreachable(
            f"no Dask scheduler answered at {scheduler} within {timeout:g} s ({reason}): start one (dask scheduler) "
            "or pass its address to --scheduler; without --scheduler a local cluster is started")

    try:
        scheme, location = parse_address(scheduler)
        if scheme in ("tcp", "tls"):
            with socket.create_connection(parse_host_port(location, 8786), timeout=timeout):
                pass
        return Client(scheduler, timeout=f"{timeout}s")
    except Exception as err:  # refused, timed out, a bad address, or another service than Dask's at it
        raise unreachable(err) from err


def plan(profile, models: list[str] | None = None) -> list[Shard]:
    """Every shard of the profile's word weights, model-major.

    ``attribution.models`` with every method, then the drawn models (:func:`cwi.pipeline.draw_models`: the
    fresh seeds, the controls, the second base) with ``attribution.draw_methods``; or `models` alone.
    """
    profile = config.get_profile(profile)
    settings = profile.attribution
    draws = pipeline.draw_models(profile)
    chosen = [*settings.models, *draws] if models is None else models
    return [Shard(model, dataset, method, block)
            for model in chosen
            for dataset in settings.datasets
            for method in (settings.draw_methods if model in draws else attribution.METHODS)
            for block in range(pipeline.word_weight_blocks(model, dataset, profile))]


@lru_cache(maxsize=4)
def _encoder(reference: str, model: str):
    """A worker keeps the models it loaded, with their fingerprints: shards of one model follow each other."""
    import torch

    if "CWI_DEVICE" not in os.environ and torch.cuda.is_available():
        try:
            from distributed import get_worker

            index = int(get_worker().name)
        except (ImportError, ValueError, TypeError):
            index = 0  # not on a worker, or a worker without a number for a name
        torch.cuda.set_device(index % torch.cuda.device_count())
    encoder = pipeline.load_encoder(model, reference)
    return encoder, pipeline.encoder_fingerprint(encoder)


def compute(reference: str, shard: Shard, fingerprint: str, threads: int | None = None) -> float:
    """Compute `shard` into the cache (a cache hit computes nothing) with `threads` torch threads; return its seconds.

    `fingerprint` is the model the driver planned with
    (:func:`cwi.pipeline.encoder_fingerprint`): a worker that kept an older
    load of it (a book model retrained since) loads it again, and one that
    cannot get those weights fails the shard rather than store another model's.
    The thread count decides how reductions are split, hence the last bit of a
    float32 result: a shard computed with as many threads as a serial run is
    identical to it, with another count equal to float32 rounding.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    start = time.perf_counter()
    encoder, loaded = _encoder(reference, shard.model)
    if loaded != fingerprint:
        _encoder.cache_clear()
        encoder, loaded = _encoder(reference, shard.model)
    if loaded != fingerprint:
        raise ValueError(f"this worker loads other weights for {shard.model} than the run planned with: "
                         "check that workers share CWI_CACHE_DIR and the Hugging Face cache with the driver")
    pipeline.word_weight_block(encoder, shard.dataset, shard.method, reference, shard.block, fingerprint=fingerprint)
    return time.perf_counter() - start


def estimate(profile, shards: list[Shard], sentences: int = 2) -> pd.DataFrame:
    """Rough serial time of `shards` on this machine, from attributing `sentences` sentences per model and method.

    Each model of `shards` attributes the first `sentences` of its first
    dataset's sample with each method (uncached); the seconds per sentence times
    the sentences its shards hold is the estimate.  Rough: sentences differ in
    length and in the path points they need, and batching makes a long run
    faster per sentence than a short one.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``method``, ``seconds_per_sentence``, ``sentences`` (in `shards`), ``seconds``.
    """
    from . import data

    profile = config.get_profile(profile)
    settings = profile.attribution
    rows = []
    for model in dict.fromkeys(shard.model for shard in shards):
        encoder = pipeline.load_encoder(model, profile)
        sample = data.sample_sts_sentences(settings.datasets[0], sentences, profile.seed)
        # Each dataset's sample read once, not once per shard (a read is about 25 ms).
        sizes = {dataset: len(pipeline.word_weight_sample(model, dataset, profile)) for dataset in settings.datasets}
        for method in settings.draw_methods if model in pipeline.draw_models(profile) else attribution.METHODS:
            start = time.perf_counter()
            attribution.word_weights(encoder, sample, method, baseline=settings.baseline, memory_gb=settings.memory_gb,
                                     **settings.method_settings(method))
            per_sentence = (time.perf_counter() - start) / len(sample)
            planned = sum(min(settings.block_sentences, sizes[shard.dataset] - shard.block * settings.block_sentences)
                          for shard in shards if shard.model == model and shard.method == method)
            rows.append({"model": model, "method": method, "seconds_per_sentence": per_sentence,
                         "sentences": planned, "seconds": per_sentence * planned})
    return pd.DataFrame(rows)


def _missing(profile, shards: list[Shard]) -> tuple[list[Shard], dict[str, str]]:
    """The shards whose block the cache lacks, and each model's fingerprint (every model loaded once, here)."""
    missing, fingerprints = [], {}
    for model in dict.fromkeys(shard.model for shard in shards):
        encoder = pipeline.load_encoder(model, profile)  # trains the book's models here, once, if need be
        fingerprints[model] = pipeline.encoder_fingerprint(encoder)
        missing += [shard for shard in shards if shard.model == model and pipeline.word_weight_block(
            encoder, shard.dataset, shard.method, profile, shard.block, compute=False,
            fingerprint=fingerprints[model]) is None]
    return missing, fingerprints


def run(profile, scheduler: str | None = None, workers: int = 2, models: list[str] | None = None,
        retries: int = 1, torch_threads: int | None = None, announce: bool = False) -> pd.DataFrame:
    """Compute every shard the cache lacks on a Dask cluster; return one row per shard of the plan.

    Parameters
    ----------
    profile
        A profile or its reference (a built-in name, a study file: workers receive
        the reference and rebuild the profile, so on a remote cluster a study file
        must be at the same path on every worker).
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); ``None``
        starts a local cluster of `workers` processes.
    models
        Only these models' shards (default: the profile's ``attribution.models``).
    retries
        Further tries of a failing shard before it is reported.
    announce
        Before computing, print the shards to do and a rough time (:func:`estimate`).
    torch_threads
        Torch threads of each worker (default: a local cluster's cores shared
        out; on a remote cluster, Dask's own default, which is 1: set it).
        With as many as a serial run, the tables are identical to it
        (:func:`compute`).

    Returns
    -------
    pandas.DataFrame
        ``shard``, ``status`` (``"cached"``, ``"computed"``), ``seconds`` (of computing).

    Raises
    ------
    ShardsFailed
        Naming every shard that failed after its retries, once all have run.
    SchedulerUnreachable
        When `scheduler` does not answer within :data:`CONNECT_TIMEOUT`: before any model is loaded.
    ValueError
        For `workers` or `torch_threads` below 1, before any work.
    """
    for option, value in (("workers", workers), ("torch_threads", torch_threads)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    name = config.get_profile(profile).reference
    if config.get_profile(name) != config.get_profile(profile):
        raise ValueError("workers rebuild the profile from its reference: pass a built-in profile or a study file, "
                         "not a profile modified in Python (write the change into a study file)")
    remote = connect(scheduler) if scheduler else None  # an unreachable address fails now, not after the models
    try:
        return _compute_missing(name, remote, workers, models, retries, torch_threads, announce)
    finally:
        if remote is not None:
            remote.close()


def _compute_missing(name: str, remote, workers: int, models: list[str] | None, retries: int,
                     torch_threads: int | None, announce: bool) -> pd.DataFrame:
    """:func:`run` once its arguments are checked: on the `remote` client, else on a local cluster of `workers`."""
    from distributed import Client, LocalCluster, as_completed

    from .progress import Progress

    shards = plan(name, models)
    missing, fingerprints = _missing(name, shards)
    todo = set(missing)
    rows = {shard: {"shard": str(shard), "status": "cached", "seconds": 0.0} for shard in shards}
    failures: dict[Shard, str] = {}
    if todo and announce:
        from .progress import duration

        rough = estimate(name, [shard for shard in shards if shard in todo])["seconds"].sum()
        spread = "" if remote is not None else f", so about {duration(rough / workers)} on {workers} local workers"
        print(f"{len(todo)} of {len(shards)} shards to compute; about {duration(rough)} of work on this machine "
              f"(timed on 2 sentences per model and method){spread}", flush=True)
    if todo:
        threads = torch_threads or (None if remote is not None else max(1, (os.cpu_count() or 1) // workers))
        cluster = None if remote is not None else LocalCluster(n_workers=workers, threads_per_worker=1,
                                                               processes=True, dashboard_address=None)
        try:
            with (remote if remote is not None else Client(cluster) as client,
                  Progress(len(todo), "shards", "shards", announce_start=True) as bar):
                ordered = [shard for shard in shards if shard in todo]
                futures = {client.submit(compute, name, shard, fingerprints[shard.model], threads, retries=retries,
                                         pure=False): shard for shard in ordered}
                for future in as_completed(futures):
                    shard = futures[future]
                    if future.status == "error":
                        error = future.exception()
                        failures[shard] = f"{type(error).__name__}: {error}"
                    else:
                        rows[shard].update(status="computed", seconds=future.result())
                    bar.update()
        finally:
            if cluster is not None:
                cluster.close()
    if failures:
        raise ShardsFailed(failures)
    return pd.DataFrame(list(rows.values()))
