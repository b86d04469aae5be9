"""What a chapter ran with: the execution record that ends every chapter.

Profile, wall time and peak memory of the kernel that ran it, torch threads,
the versions of the packages the numbers depend on, and the commit of the code,
so that a reader can tell which run produced the figures and what it cost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "execution_record"]

PACKAGES = ("torch", "transformers", "captum", "shap", "numpy", "pandas", "scipy", "scikit-learn")


def _commit(folder: Path) -> str:
    """``git describe`` of the checkout holding `folder` (``-dirty`` with uncommitted changes)."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=folder,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"
    return result.stdout.strip() if result.returncode == 0 else "unknown (not a git checkout)"


def execution_record(profile: str):
    """A two-column table: what this kernel ran and what it cost, up to now.

    The wall time counts from the start of the kernel process, which papermill
    starts for the chapter; in JupyterLab it counts from the kernel's start.
    """
    import pandas as pd
    import psutil
    import torch

    process = psutil.Process()
    peak = getattr(process.memory_info(), "peak_wset", None) or _peak_rss_bytes()
    rows = {
        "profile": profile,
        "wall time": f"{time.time() - process.create_time():.0f} s (since the kernel started)",
        "peak memory": f"{peak / 2**30:.2f} GiB (kernel process)",
        "torch threads": str(torch.get_num_threads()),
        "python": sys.version.split()[0],
        **{name: _version(name) for name in PACKAGES},
        "commit": _commit(Path(__file__).resolve().parent),
    }
    return pd.DataFrame({"value": rows}).rename_axis("execution record")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _peak_rss_bytes() -> int:
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
