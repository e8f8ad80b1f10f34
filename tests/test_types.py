"""Types that hold for users: a user's script type-checks with mypy, mypy really sees stylekit's signatures
(a wrong call is reported), and every lazy public name has its typed import for IDEs and type checkers.

The mypy check is skipped when mypy is not installed (it is in the ``test`` extra).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_SCRIPT = ROOT / "tests" / "typing" / "user_script.py"

WRONG = '''
import stylekit
from stylekit.losses import StyleTransferLoss

StyleTransferLoss(content_layers=3)
stylekit.ImageStyleConfig(size="big")
n: int = StyleTransferLoss().total(stylekit.resolve_device("cpu"))
'''


def test_user_script_type_checks_and_mistakes_are_reported(tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    wrong = tmp_path / "wrong.py"
    wrong.write_text(WRONG)
    # --follow-imports=silent: stylekit is analysed for its types, and errors are reported in the given files
    # only, as for a user's script against an installed package.
    r = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
                        "--cache-dir", str(tmp_path / "cache"), str(USER_SCRIPT), str(wrong)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in r.stdout.splitlines() if ": error:" in line]
    assert not [e for e in errors if "user_script.py" in e], r.stdout
    # the deliberate mistakes are found: mypy sees the real signatures behind the lazy names
    lines = sorted({int(e.split(":")[1]) for e in errors if e.startswith(str(wrong))})
    assert lines == [5, 6, 7], r.stdout + r.stderr


def _lazy_packages() -> list[Path]:
    return [p for p in (ROOT / "stylekit").rglob("__init__.py") if "lazy_names(" in p.read_text()]


@pytest.mark.parametrize("init", _lazy_packages(), ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_every_lazy_name_has_a_typed_import(init):
    """A name served lazily by ``__getattr__`` is invisible to type checkers and IDEs unless the package also
    imports it under ``if TYPE_CHECKING:``; the two lists must be the same, and point at the same module."""
    tree = ast.parse(init.read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom):
                    for alias in imp.names:
                        typed[alias.asname or alias.name] = "." * imp.level + (imp.module or "")
    package = ".".join(init.parent.relative_to(ROOT).parts)
    lazy = importlib.import_module(package)._LAZY
    assert set(typed) == set(lazy), f"typed imports differ from _LAZY: {set(typed) ^ set(lazy)}"
    for name, module in lazy.items():
        # the typed import resolves to the module the lazy one imports (or re-exports the same object)
        lazy_mod = importlib.util.resolve_name(module, package)
        typed_mod = importlib.util.resolve_name(typed[name], package)
        assert getattr(importlib.import_module(typed_mod), name) is getattr(importlib.import_module(lazy_mod), name)
