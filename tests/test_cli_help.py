"""The command line's --help: every option has help under a heading, every command ends with examples, the help
of generated options is composed in one way (prefix kept as written, one default, never "None"), and --plot is
the same switch for every medium that has one."""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from stylekit._options import GROUPS, help_text
from stylekit.cli import _register, cli

_register()

#: Commands whose options are listed under the headings of GROUPS (spectral keeps one list per subcommand).
GROUPED = ("image", "audio", "video", "batch", "settings")


def _commands(cmd=cli, path=("stylekit",)):
    yield " ".join(path), cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


ALL = dict(_commands())


def _options(cmd):
    return [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden and p.name not in ("help",)]


def _plain(text: str) -> str:
    """Rendered help with rich's box drawing and line wrapping undone."""
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def _help(*args: str) -> str:
    r = CliRunner().invoke(cli, [*args, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return _plain(r.output)


def test_every_command_is_walked():
    assert {"stylekit image", "stylekit audio", "stylekit video", "stylekit batch", "stylekit settings",
            "stylekit spectral", "stylekit spectral train", "stylekit spectral morph"} <= set(ALL)


@pytest.mark.parametrize("path", sorted(ALL))
def test_every_option_has_help(path):
    missing = [p.opts[0] for p in _options(ALL[path]) if not (p.help or "").strip()]
    assert not missing, f"{path}: options without help: {missing}"


@pytest.mark.parametrize("path", sorted(ALL))
def test_every_command_ends_its_help_with_examples(path):
    epilog = ALL[path].epilog or ""
    lines = [ln.strip() for ln in epilog.split("\n") if ln.strip()]
    assert lines and lines[0] == "Examples:", f"{path}: no examples"
    examples = lines[1:]
    assert len(examples) >= 2 and all(ln.startswith("stylekit ") for ln in examples), examples
    if path != "stylekit":      # each command's examples run that command (a preset example may add another)
        assert sum(ln.startswith(path) for ln in examples) >= 2, examples
    rendered = _help(*path.split()[1:])
    assert "Examples:" in rendered and examples[0] in rendered


@pytest.mark.parametrize("name", GROUPED)
def test_options_are_listed_under_headings(name):
    cmd = ALL[f"stylekit {name}"]
    panels = {p.opts[0]: getattr(p, "panel", None) for p in _options(cmd)}
    assert not {o: g for o, g in panels.items() if g not in GROUPS}, panels
    text = CliRunner().invoke(cli, [name, "--help"], terminal_width=200).output
    shown = [g for g in GROUPS if f"╭─ {g} " in text]
    assert "Input and output" in shown and set(shown) == {g for g in panels.values()}
    # the headings come in the order of GROUPS
    assert sorted(shown, key=lambda g: text.index(f"╭─ {g} ")) == shown


@pytest.mark.parametrize("path", sorted(p for p in ALL if p.startswith("stylekit spectral ")))
def test_spectral_options_are_listed_under_headings(path):
    text = CliRunner().invoke(cli, [*path.split()[1:], "--help"], terminal_width=200).output
    assert "╭─ Input and output " in text, path
    # only --help is left under the catch-all heading
    catch_all = text[text.index("╭─ Options "):].split("╰")[0]
    assert [ln for ln in catch_all.splitlines()[1:] if "--" in ln] == [next(ln for ln in catch_all.splitlines()
                                                                            if "--help" in ln)], catch_all


def test_the_stylize_commands_have_the_headings_the_issue_names():
    text = CliRunner().invoke(cli, ["image", "--help"], terminal_width=200).output
    for heading in ("Input and output", "Strength", "Colour", "Quality and speed", "Device", "Resume"):
        assert f"╭─ {heading} " in text
    for opt, heading in (("--style-weight", "Strength"), ("--preserve-color", "Colour"), ("--device", "Device"),
                         ("--resume", "Resume"), ("--size", "Quality and speed"), ("--plot", "Input and output")):
        [p] = [p for p in _options(ALL["stylekit image"]) if opt in p.opts]
        assert p.panel == heading, (opt, p.panel)


# --- how help is composed ---------------------------------------------------------------------------------

def test_help_text_keeps_the_declared_text_and_says_the_default_once():
    assert help_text("FFT size.", prefix="Audio: ", default="2048") == "Audio: FFT size. [default: 2048]"
    assert help_text("STFT hop (samples).", prefix="Audio: ", default="512").startswith("Audio: STFT hop")
    assert help_text("Replace outputs.") == "Replace outputs."          # a switch: no default
    with pytest.raises(ValueError, match="show="):
        help_text("Highest mel frequency (Hz).", default="None")
    with pytest.raises(ValueError, match="states a default"):
        help_text("Highest mel frequency (default: Nyquist).", default="Nyquist")


@pytest.mark.parametrize("path", sorted(ALL))
def test_no_option_shows_a_default_of_none_or_two_defaults(path):
    for p in _options(ALL[path]):
        text = p.help or ""
        assert "[default: None]" not in text and text.count("[default") <= 1, (p.opts, text)
        if "[default" in text:      # said in the text: click must not add a second one
            assert not p.show_default, (p.opts, text)
    rendered = _help(*path.split()[1:])
    assert "[default: None]" not in rendered and "(default: None)" not in rendered


def test_the_broken_help_texts_of_the_issue_read_right():
    batch = _help("batch")
    assert "Audio: FFT size. [default: 2048]" in batch and "fFT" not in batch
    assert "Audio: STFT hop (samples). [default: 512]" in batch and "sTFT" not in batch
    audio = _help("audio")
    fmax = audio[audio.index("--fmax"):audio.index("--fmax") + 80]
    assert "[default: Nyquist]" in fmax and "None" not in fmax and fmax.count("default") == 1


# --- --plot --------------------------------------------------------------------------------------------

def test_plot_is_the_same_switch_for_image_and_audio():
    from stylekit._job import plot_path
    plots = {}
    for name in ("image", "audio", "video"):
        found = [p for p in _options(ALL[f"stylekit {name}"]) if "--plot" in p.opts]
        if found:
            plots[name] = found[0]
    assert set(plots) == {"image", "audio"}          # video writes no figure
    for name, p in plots.items():
        assert p.is_flag and p.panel == "Input and output" and "OUTPUT_STEM.plot.png" in p.help, name
    assert plot_path("runs/out.wav").as_posix() == "runs/out.plot.png"
