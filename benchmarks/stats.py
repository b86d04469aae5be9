"""Speed and memory of cwi.stats.word_statistics against the pure-Python way.

    CWI_DATA_DIR=../shared/data python benchmarks/stats.py [--sizes 100000 1000000]

Every case runs in a fresh subprocess, so its peak resident memory (ru_maxrss)
is its own. Times cover the statistics only, not reading the corpus; the peak
includes the corpus strings, reported separately as the RSS before the call.
The corpus is the Wikipedia pack; a size above its 910,612 sentences repeats it,
shuffled. The naive way (dicts and Counters, ``stats.information_gain_reference``)
runs on the smallest size only, and its values are checked against the fast ones.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    "naive (Counter), raw IG": "naive",
    "word_statistics, raw IG": None,
    "word_statistics, IG + 1 shuffle": "shuffle",
}


def corpus(size: int) -> list[str]:
    import numpy as np

    from cwi import data

    sentences = data.load_wiki()
    rng = np.random.default_rng(0)
    while len(sentences) < size:
        extra = [sentences[i] for i in rng.permutation(len(sentences))[: size - len(sentences)]]
        sentences = sentences + extra
    return sentences[:size]


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def measure(case: str, size: int) -> dict:
    """Run one case in this process and return its figures."""
    import numpy as np

    from cwi import stats

    sentences = corpus(size)
    before = rss_mib()
    start = time.perf_counter()
    if CASES[case] == "naive":
        gains = stats.information_gain_reference(sentences)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        fast = stats.word_statistics(sentences, correction=None)["information_gain"]
        naive = np.array([gains[word] for word in fast.index])
        error = float(np.nanmax(np.abs(naive - fast.to_numpy())))
    else:
        table = stats.word_statistics(sentences, correction=CASES[case])
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        error = None
        assert len(table) > 0
    return {"case": case, "sentences": size, "seconds": seconds, "rss_before_mib": before,
            "peak_rss_mib": peak, "max_abs_diff_vs_fast": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", nargs=2, metavar=("CASE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return

    rows = []
    for size in args.sizes:
        for case in CASES:
            if CASES[case] == "naive" and size != min(args.sizes):
                continue
            out = subprocess.run([sys.executable, __file__, "--one", case, str(size)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{row['case']:<34} {row['sentences']:>9,} sentences  {row['seconds']:8.2f} s  "
                  f"peak RSS {row['peak_rss_mib']:7.0f} MiB (corpus loaded: {row['rss_before_mib']:.0f} MiB)",
                  flush=True)
    naive = next(r for r in rows if CASES[r["case"]] == "naive")
    fast = next(r for r in rows if r["sentences"] == naive["sentences"] and CASES[r["case"]] is None)
    print(f"\nspeed-up on {naive['sentences']:,} sentences, raw IG: {naive['seconds'] / fast['seconds']:.1f}x "
          f"(target >= 10x); largest |naive - fast| = {naive['max_abs_diff_vs_fast']:.2e} nats")
    for row in rows:
        if row["sentences"] >= 1_000_000 and CASES[row["case"]] != "naive":
            verdict = "within" if row["peak_rss_mib"] <= 2048 else "OVER"
            print(f"{row['case']} on {row['sentences']:,} sentences: peak {row['peak_rss_mib']:.0f} MiB, "
                  f"{verdict} the 2 GiB target")


if __name__ == "__main__":
    main()
