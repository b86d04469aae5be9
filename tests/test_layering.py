"""The package's layers: every module imports on its own, and only the pipeline knows profiles and the cache."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cwi"
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")
# Algorithms take plain inputs: no profile (config), no artefact store (cache), no pipeline.
ALGORITHMS = ("stats", "theory", "train", "inputs", "integrated_gradients", "shapley", "attribution", "faithfulness",
              "analysis", "inference", "evaluation", "weighting", "similarity", "similarity_references")
ORCHESTRATION = {"config", "studies", "cache", "pipeline", "runs", "shards"}


def cwi_imports(module: str) -> set[str]:
    """The cwi modules `module` imports at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    type_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and getattr(block.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        found |= {node.module} if node.module else {alias.name for alias in node.names}
    return found


def test_the_layers_are_what_the_names_say():
    assert cwi_imports("encoders") == set(), "cwi.encoders must import nothing of cwi"
    assert cwi_imports("integrity") == set(), "cwi.integrity must import nothing of cwi (models checks folders with it)"
    for module in ALGORITHMS:
        assert not cwi_imports(module) & ORCHESTRATION, f"cwi.{module} reaches {cwi_imports(module) & ORCHESTRATION}"
    users = {module for module in MODULES if "pipeline" in cwi_imports(module)}
    assert users == {"shards"}, f"only chapters and cwi.shards (which distributes its blocks) use the pipeline: {users}"


def test_the_checker_sees_imports():
    assert cwi_imports("weighting") == {"stats", "evaluation"}
    assert "config" not in cwi_imports("train")  # only under TYPE_CHECKING there
    assert "config" in cwi_imports("pipeline")


# One interpreter imports the heavy third-party packages once (none of cwi), then forks a child per module:
# each child starts with no cwi module imported, as a fresh interpreter would, in a tenth of the time.
FORKER = r"""
import importlib, os, sys, traceback
import numpy, pandas, scipy.stats, sklearn.feature_extraction.text, matplotlib, torch, tokenizers
from transformers import AutoConfig, AutoModel, AutoTokenizer
assert not any(name == "cwi" or name.startswith("cwi.") for name in sys.modules)
print("ready", flush=True)
for line in sys.stdin:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(line.strip())
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc().encode()[-4000:])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        error = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), error.replace("\n", "\\n"), flush=True)
"""


@pytest.fixture(scope="module")
def importer():
    """Imports one module in a process of its own: a child forked from :data:`FORKER`, or a fresh interpreter."""
    if not hasattr(__import__("os"), "fork"):
        yield lambda module: subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                                            text=True)
        return
    forker = subprocess.Popen([sys.executable, "-c", FORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=PACKAGE.parent)
    assert forker.stdout.readline().strip() == "ready"

    def run(module):
        forker.stdin.write(module + "\n")
        forker.stdin.flush()
        code, _, error = forker.stdout.readline().rstrip("\n").partition(" ")
        return subprocess.CompletedProcess(module, int(code), "", error.replace("\\n", "\n"))

    yield run
    forker.stdin.close()
    forker.wait(timeout=30)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module, importer):
    """A process per module with no cwi module imported before: an import cycle fails here whatever else was."""
    result = importer(f"cwi.{module}")
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_forked_importer_sees_a_broken_import(importer):
    assert importer("cwi.no_such_module").returncode == 1
