"""The documentation builds offline with no warnings, and its pictures are present, small, and reproducible.

The build is the one CI runs (``python -m sphinx -W --keep-going -b html docs OUT``): a broken link or
cross-reference, a missing picture, a page outside the table of contents or a docstring that does not parse
fails it. Skipped only when Sphinx or MyST-Parser is not installed (``pip install -e ".[docs]"``).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def sphinx_build(src: Path, out: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("sphinx", reason="the docs extra is not installed")
    pytest.importorskip("myst_parser", reason="the docs extra is not installed")
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(out / "doctrees"), str(src), str(out / "html")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    """The docs, built once for this module's tests; the folder of the HTML pages."""
    out = tmp_path_factory.mktemp("docs")
    r = sphinx_build(DOCS, out)
    assert r.returncode == 0, f"docs build failed or warned:\n{r.stderr[-4000:]}"
    return out / "html"


def test_docs_build_without_warnings(built_docs):
    html = built_docs
    for page in ("index", "getting-started", "image-guide", "examples", "audio", "spectral", "batch",
                 "benchmarks", "reliability", "api/losses", "api/pipelines", "api/optim", "api/features"):
        assert (html / f"{page}.html").is_file(), f"{page} missing from the built docs"
    # The API reference is generated from the docstrings: the loss functions and classes are documented.
    api = (html / "api" / "losses.html").read_text()
    for name in ("gram_matrix", "style_loss", "StyleTransferLoss", "GramStyleLoss", "ContentLoss", "TVLoss"):
        assert f'id="stylekit.losses.' in api and name in api, name
    assert "stylize_image" in (html / "api" / "pipelines.html").read_text()


def test_every_audio_player_has_its_file_in_the_built_site(built_docs):
    players = 0
    for page in built_docs.rglob("*.html"):
        for src in re.findall(r'<(?:audio|source|video)[^>]*\ssrc="([^"]+)"', page.read_text(encoding="utf-8")):
            if "://" in src:
                continue
            players += 1
            assert (page.parent / src).is_file(), f"{page.relative_to(built_docs)}: {src} is not in the site"
    assert players >= 10        # docs/audio.md alone has a dozen


def test_broken_reference_fails_the_build(tmp_path):
    """The strict build really is strict: a link to a missing page or a missing picture fails it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text((DOCS / "conf.py").read_text())
    (src / "index.md").write_text("# Test\n\nSee [a page that is not there](missing.md).\n\n![](nowhere.png)\n")
    r = sphinx_build(src, tmp_path / "out")
    assert r.returncode != 0
    assert "missing.md" in r.stderr and "nowhere.png" in r.stderr


def test_guide_pictures_exist_and_are_small():
    """Every picture the image guide shows is in docs/guide/, a JPEG under 150 kB, with its settings."""
    guide = (DOCS / "image-guide.md").read_text()
    shown = re.findall(r"\]\((guide/[^)\s]+\.jpg)\)", guide)
    assert len(shown) >= 9
    for rel in shown:
        p = DOCS / rel
        assert p.is_file(), rel
        assert p.stat().st_size < 150_000, f"{rel}: {p.stat().st_size} bytes"
    settings = json.loads((DOCS / "guide" / "settings.json").read_text())
    assert settings["script"] == "docs/make_figures.py"
    from_script = {f"guide/{name}.jpg" for name in settings["figures"]} | {"guide/inputs.jpg"}
    assert set(shown) <= from_script, "the guide shows a picture make_figures.py does not make"


def test_make_figures_smoke(tmp_path):
    """docs/make_figures.py runs end to end at a tiny size and writes every figure and its settings."""
    r = subprocess.run([sys.executable, str(DOCS / "make_figures.py"), "--size", "64", "--iterations", "2",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    names = {p.name for p in tmp_path.iterdir()}
    expected = {f"{n}.jpg" for n in ("inputs", "tradeoff", "style_scale", "preserve_color", "pooling", "layers",
                                     "blend", "coarse_to_fine", "weights")} | {"settings.json"}
    assert expected <= names, expected - names
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["base"]["size"] == 64 and settings["torch_threads"] == 1


# --- the API reference covers every public name ------------------------------------------------------------

_PRIMITIVE = (int, float, bool, str, bytes, type(None))


def public_modules() -> list[str]:
    """``stylekit`` and every module and package under it with no private part in its name."""
    import pkgutil

    import stylekit
    return ["stylekit"] + sorted(m.name for m in pkgutil.walk_packages(stylekit.__path__, "stylekit.")
                                 if not any(p.startswith("_") for p in m.name.split(".")))


def public_names() -> list[tuple[str, str, object]]:
    """``(module, name, object)`` for each name in the ``__all__`` of a public module."""
    import importlib
    out = []
    for modname in public_modules():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            out.append((modname, name, getattr(module, name)))
    return out


def documented_ids(html: Path | str) -> set[str]:
    """The dotted names the API reference pages (``docs/api``) document: the ids of their entries."""
    ids: set[str] = set()
    for page in Path(html, "api").glob("*.html"):
        ids |= set(re.findall(r'id="(stylekit[\w.]*)"', page.read_text()))
    return ids


def missing_from(ids: set[str], names: list[tuple[str, str, object]]) -> list[str]:
    """The public names with no entry in ``ids``. An object counts as documented under any public name it has
    (a re-exported function is documented once, where it is defined or re-exported); a number or string only
    under its own name."""
    paths: dict[int, set[str]] = {}
    for modname, name, obj in names:
        paths.setdefault(id(obj), set()).add(f"{modname}.{name}")
    missing = []
    for modname, name, obj in names:
        own = f"{modname}.{name}"
        candidates = {own} if isinstance(obj, _PRIMITIVE) else set(paths[id(obj)])
        home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if isinstance(home, str) and isinstance(qualname, str) and not isinstance(obj, _PRIMITIVE):
            candidates.add(f"{home}.{qualname}")
        if not candidates & ids:
            missing.append(own)
    return sorted(set(missing))


def test_api_reference_covers_every_public_name(built_docs):
    names = public_names()
    assert len(names) > 300 and len({id(o) for *_, o in names}) > 250   # the survey found them all
    missing = missing_from(documented_ids(built_docs), names)
    assert not missing, f"{len(missing)} public names are not in docs/api: {missing}"


def test_a_name_missing_from_the_reference_is_found():
    """The coverage check can fail: a name nowhere in the pages is reported, a re-exported one is not."""
    import stylekit.losses as losses
    names = [("stylekit.losses", "gram_matrix", losses.gram_matrix),
             ("stylekit.losses.functional", "gram_matrix", losses.gram_matrix),
             ("stylekit.losses", "STYLE_LOSSES", losses.STYLE_LOSSES), ("stylekit", "__version__", "0.1.0")]
    ids = {"stylekit.losses.functional.gram_matrix", "stylekit.losses.modules.STYLE_LOSSES"}
    assert missing_from(ids, names) == ["stylekit.__version__", "stylekit.losses.STYLE_LOSSES"]
    ids.add("stylekit.losses.STYLE_LOSSES")
    ids.add("stylekit.__version__")
    assert missing_from(ids, names) == []


# --- the README as PyPI shows it, and pages that stand alone -------------------------------------------------

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
_HTML_SRC = re.compile(r"<(?:img|a|audio|source)\b[^>]*?(?:src|href)=[\"']([^\"']+)", re.I)


def relative_targets(markdown: str) -> list[str]:
    """Link and picture targets that are not web addresses or anchors (PyPI cannot resolve them)."""
    targets = _LINK.findall(markdown) + _HTML_SRC.findall(markdown)
    return [t for t in targets if not re.match(r"(https?:|mailto:|#)", t)]


def test_readme_renders_on_pypi():
    """setup.cfg makes README.md the PyPI description: no picture or link by relative path (PyPI shows none
    of them), and it says how to install from a wheel."""
    cfg = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^long_description = file: README\.md$", cfg, re.M)
    assert re.search(r"^long_description_content_type = text/markdown$", cfg, re.M)
    readme = (ROOT / "README.md").read_text()
    assert relative_targets(readme) == []
    assert relative_targets("![x](docs/a.jpg) [y](https://e.org) [z](#q) <img src='b.png'>") == ["docs/a.jpg",
                                                                                                  "b.png"]
    assert re.search(r"pip install \S*dist/stylekit-[\d.]+-py3-none-any\.whl", readme)
    assert "StyleTransferLoss(style=" in readme


def test_docs_and_readme_point_at_no_file_outside_the_repository():
    pages = [ROOT / "README.md", DOCS / "conf.py", *DOCS.rglob("*.md")]
    # (a scratch folder such as /tmp/notes in a command to type is the reader's choice, not a file we point at)
    outside = re.compile(r"\.\./shared|/work/|/home/|/root/|/Users/|file://|[A-Z]:\\\\")
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in pages for m in outside.finditer(p.read_text())]
    assert found == []
    # every relative link of a page resolves inside the repository
    for page in DOCS.rglob("*.md"):
        for target in relative_targets(page.read_text()):
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert ROOT in resolved.parents or resolved == ROOT, f"{page.relative_to(ROOT)} -> {target}"


def test_code_boxes_wrap_long_lines(built_docs):
    """The pages load docs/_static/code.css, which wraps long lines in code boxes instead of cutting them."""
    css = (built_docs / "_static" / "code.css").read_text()
    assert re.search(r"div\.highlight pre[^{]*\{[^}]*white-space:\s*pre-wrap", css, re.S)
    for page in ("index.html", "api/losses.html", "getting-started.html"):
        assert re.search(r'<link[^>]+href="(\.\./)?_static/code\.css', (built_docs / page).read_text()), page


# --- examples: every public function and class shows a >>> example, run as a doctest ------------------------

def without_examples(names: list[tuple[str, str, object]]) -> list[str]:
    """The public functions and classes (defined in stylekit) whose docstring has no ``>>>`` example."""
    import inspect
    out = set()
    for _, _, obj in names:
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__.startswith("stylekit"):
            if ">>>" not in (obj.__doc__ or ""):
                out.add(f"{obj.__module__}.{obj.__qualname__}")
    return sorted(out)


def test_public_functions_and_classes_have_examples():
    """Every public function and class shows a ``>>>`` example; CI runs them all as doctests
    (``pytest --doctest-modules stylekit``, in .ci/run)."""
    assert without_examples(public_names()) == []
    # the check finds a function without one
    def bare():
        """No example."""
    bare.__module__ = "stylekit.optim"
    assert without_examples([("stylekit.optim", "bare", bare)]) == [f"stylekit.optim.{bare.__qualname__}"]
