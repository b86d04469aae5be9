"""The book: TOC completeness, chapters executed with papermill, HTML rendering, errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cwi.__main__ import ChapterFailed, chapter_sources, run_chapter, toc_entries

ROOT = Path(__file__).resolve().parents[1]


def test_every_chapter_source_is_in_the_toc():
    listed = set(toc_entries(ROOT))
    sources = {f"book/{path.stem}" for path in (ROOT / "book").glob("*.py")}
    assert sources, "no chapter sources found"
    assert sources - listed == set(), "book/*.py missing from _toc.yml"
    assert chapter_sources(ROOT), "no executable chapter in the TOC"


def test_chapters_declare_a_parameters_cell():
    for source in chapter_sources(ROOT):
        text = source.read_text()
        assert '# %% tags=["parameters"]\nprofile = ' in text, f"{source.name} has no parameters cell"


def copy_book(destination: Path) -> Path:
    for name in ["_config.yml", "_toc.yml", "jupytext.toml"]:
        shutil.copy(ROOT / name, destination / name)
    shutil.copytree(ROOT / "book", destination / "book", ignore=shutil.ignore_patterns("*.ipynb", "_build"))
    return destination


def test_whole_book_runs_with_the_smoke_profile_and_renders(tmp_path, data_dir):
    """`python -m cwi book --profile smoke` executes every TOC chapter, then renders HTML."""
    root = copy_book(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cwi", "--root", str(root), "book", "--profile", "smoke"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for source in chapter_sources(root):
        notebook = json.loads(source.with_suffix(".ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"] == {"profile": "smoke"}
        outputs = [o for cell in notebook["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"]
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{source.name} drew no figure"
        html = root / "_build" / "html" / "book" / f"{source.stem}.html"
        assert html.exists(), f"{html} not rendered"
        assert "Traceback" not in html.read_text()
    assert (root / "_build" / "html" / "index.html").exists()


def test_failing_chapter_names_chapter_and_cell(tmp_path):
    source = tmp_path / "book" / "99_broken.py"
    source.parent.mkdir()
    source.write_text(
        '# %% tags=["parameters"]\nprofile = "default"\n\n# %%\nx = 1\n\n# %%\nraise ValueError("planted failure")\n'
    )
    with pytest.raises(ChapterFailed) as info:
        run_chapter(source, "smoke", progress=False)
    message = str(info.value)
    assert "99_broken.py" in message and "code cell 3 of the source" in message
    assert "ValueError: planted failure" in message


def test_cli_reports_unknown_chapter(tmp_path):
    root = copy_book(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "cwi", "--root", str(root), "run", "no_such_chapter", "--profile", "smoke"],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert "no chapter 'no_such_chapter'" in result.stderr and "03_statistics" in result.stderr
