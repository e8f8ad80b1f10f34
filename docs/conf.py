"""Sphinx configuration for stylekit's documentation (Markdown pages through MyST, API pages through autodoc).

Build (offline; warnings are errors)::

    python -m sphinx -W --keep-going -b html docs build/docs

Needs the ``docs`` extra: ``pip install -e ".[docs]"``.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# Import the stylekit of this checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "stylekit"
author = "the stylekit authors"
copyright = "stylekit authors"

from stylekit import __version__ as release  # noqa: E402

version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# table.md is a fragment written by `stylekit spectral compare`; spectral.md carries its content.
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "spectral/table.md"]

# MyST: ```{directive} fences, ::: fences, $math$, and heading anchors for #section links.
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# autodoc: numpydoc-style docstrings, signatures as written, members in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}
# A method without a docstring shows none, rather than its base class's (nn.Module.forward's, for instance).
autodoc_inherit_docstrings = False
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = f"stylekit {release}"
# code.css: long lines in code boxes wrap instead of running off the page (the docs ship their own CSS only).
html_static_path = ["_static"]
html_css_files = ["code.css"]
html_theme_options = {
    "description": "Neural style transfer for images and sound",
    "fixed_sidebar": False,
    "page_width": "1100px",
}
# Pages show the project's own pictures; no web fonts or other files are fetched.
html_show_sourcelink = False

# batch.md shows a CSV manifest in a ```csv block; Pygments has no CSV lexer and shows it as plain text,
# which is what we want, so that one notice is not an error.
# A page may go from "#" straight to "###" (the GitHub view of these pages renders it fine): that is a
# matter of style for the page's author, not a broken page.
suppress_warnings = ["misc.highlighting_failure", "myst.header"]

_SECTION_RULE = re.compile(r"^-{3,}\s*$")
_ENTRY_SECTIONS = {"Parameters", "Other Parameters", "Attributes"}
_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_][\w, ]*?) : (.+)$")


def _numpydoc_entries(app, what, name, obj, options, lines: list[str]) -> None:
    """Adapt stylekit's docstrings to napoleon before it runs (priority 400; napoleon's is 500).

    stylekit writes entries as ``name : description``, with the shape and range of a tensor on that line as
    prose (CONVENTIONS.md, 6), not a bare type. Napoleon would render that prose as the entry's *type* and
    the following lines as its description; here the whole text becomes the description. A free paragraph
    written after a section's entries belongs to the summary and is moved in front of the first section.
    """
    first = next((i for i in range(len(lines) - 1) if lines[i].strip() and _SECTION_RULE.match(lines[i + 1])), None)
    if first is None:
        return
    out, lifted, section, i = [], [], None, 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and _SECTION_RULE.match(lines[i + 1]):
            section = line.strip()
            out += [line, lines[i + 1]]
            i += 2
            continue
        at_base = bool(line) and not line[0].isspace()
        if section in _ENTRY_SECTIONS and at_base and (m := _ENTRY.match(line)):
            out += [m.group(1), "    " + m.group(2)]
            i += 1
            continue
        if section in _ENTRY_SECTIONS and at_base and i > 0 and not lines[i - 1].strip():
            while i < len(lines) and lines[i].strip():  # a free paragraph runs to the next blank line
                lifted.append(lines[i])
                i += 1
            lifted.append("")
            continue
        out.append(line)
        i += 1
    if lifted:
        out[first:first] = lifted
    lines[:] = out


_RELATIVE = re.compile(r"(:(?:mod|func|class|meth|attr|data|exc|obj):`~?)\.([A-Za-z_]\w*)((?:\.\w+)*)`")


def _owning_package(what: str, name: str) -> str | None:
    """The package a documented object's module sits in (the package itself for an ``__init__``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:n]))
        if mod is not None:
            return mod.__name__ if hasattr(mod, "__path__") else mod.__name__.rpartition(".")[0]
    return None


def _absolute_refs(app, what, name, obj, options, lines: list[str]) -> None:
    """Make a relative reference to a sibling module (``:mod:`.io```, ``:func:`~.transform.to_audio```)
    absolute. Sphinx resolves such a reference by searching every documented name that ends with it, and with
    one home per medium ``.io`` ends both ``stylekit.image.io`` and ``stylekit.audio.io``; the author means the
    one beside the docstring's own module. References to anything else are left as written."""
    import importlib.util
    package = _owning_package(what, name)
    if not package:
        return

    def absolute(m: re.Match) -> str:
        sibling = f"{package}.{m.group(2)}"
        try:
            found = importlib.util.find_spec(sibling) is not None
        except (ImportError, ValueError):
            found = False
        return f"{m.group(1)}{sibling}{m.group(3)}`" if found else m.group(0)

    lines[:] = [_RELATIVE.sub(absolute, line) for line in lines]


_PROSE: dict[str, list[str]] = {}


def _keep_prose(app, what, name, obj, options, lines: list[str]) -> None:
    """The ``#:`` comments on module constants are prose ("Every layer name, in network order: ...");
    napoleon would read the text before the first colon as a type. Keep them as written."""
    if what in ("data", "attribute"):
        _PROSE[name] = list(lines)


def _restore_prose(app, what, name, obj, options, lines: list[str]) -> None:
    if what in ("data", "attribute") and name in _PROSE:
        lines[:] = _PROSE.pop(name)


def _document_public_data(app, what, name, obj, options, lines: list[str]) -> None:
    """Every name in a module's ``__all__`` is documented, with or without a docstring (tests/test_docs.py
    checks that each public name appears). autodoc documents a module constant only when it has a ``#:``
    comment; the others (``INITS``, a name re-exported from another module) are added here as ``autodata``
    entries after the module's text, with their value when it is short."""
    if what != "module" or not options.get("members") or getattr(obj, "__all__", None) is None:
        return
    import inspect

    from sphinx.pycode import ModuleAnalyzer
    try:
        commented = {n for (ns, n) in ModuleAnalyzer.for_module(name).find_attr_docs() if ns == ""}
    except Exception:  # no source to read
        commented = set()
    excluded = options.get("exclude-members") or ()
    extra = []
    for member in obj.__all__:
        value = getattr(obj, member, None)
        if member in commented or member in excluded or _autodoc_finds(value):
            continue
        short = len(repr(value)) <= 120
        extra += ["", f".. autodata:: {name}.{member}"] + ([] if short else ["   :no-value:"])
    if extra:
        lines += extra + [""]


def _autodoc_finds(value) -> bool:
    """Whether autodoc documents this module member itself (functions and classes; see :func:`_keep_public`)."""
    import inspect
    return inspect.isroutine(value) or inspect.isclass(value) or inspect.ismodule(value)


def _keep_public(app, what, name, obj, skip, options) -> bool | None:
    """A function or class in a module's ``__all__`` is documented even without a docstring."""
    if what == "module" and skip and _autodoc_finds(obj) and name not in (options.get("exclude-members") or ()):
        return False
    return None


def _no_type_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """A constant without a docstring of its own shows none, not that of its type (``dict``'s, for instance)."""
    import inspect
    if what in ("data", "attribute") and lines:
        own = inspect.getdoc(type(obj))
        if own and "\n".join(lines).strip() == own.strip():
            lines[:] = []


#: Media that pages play through raw HTML (``<audio src="audio/x.wav">``, ``<video>``): Sphinx copies only the
#: files it sees referenced through its own roles, so these are copied beside the pages, at the same relative
#: paths, when the build ends.
MEDIA_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".mp4", ".webm")


def _copy_media(app, exception) -> None:
    import shutil
    if exception is not None or app.builder.format != "html":
        return
    src, out = Path(app.srcdir), Path(app.outdir)
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        if f.suffix.lower() in MEDIA_SUFFIXES and f.is_file() and not rel.parts[0].startswith(("_", ".")):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, out / rel)


def setup(app):
    app.connect("build-finished", _copy_media)
    app.connect("autodoc-skip-member", _keep_public)
    app.connect("autodoc-process-docstring", _no_type_docstring, priority=200)
    app.connect("autodoc-process-docstring", _document_public_data, priority=700)
    app.connect("autodoc-process-docstring", _absolute_refs, priority=300)
    app.connect("autodoc-process-docstring", _numpydoc_entries, priority=400)
    app.connect("autodoc-process-docstring", _keep_prose, priority=401)
    app.connect("autodoc-process-docstring", _restore_prose, priority=600)
