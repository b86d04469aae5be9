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
              "analysis", "inference", "evaluation", "weighting", "similarity")
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


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own(module):
    """A fresh interpreter per module: an import cycle fails here whatever was imported before."""
    result = subprocess.run([sys.executable, "-c", f"import cwi.{module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
