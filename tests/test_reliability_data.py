"""Reliability, round 2 (issue 24): nothing a user owns is destroyed, and no input ends in a traceback, a hang
or a crash.

Three classes, each checked through the command line:

- **data safety**: every path a run writes is checked, before any work, against every path it reads (spectral
  eval, compare, encode, decode, morph, train; batch rows, their styles and the results manifest); batch
  outputs stay inside OUT_DIR; two batches on one folder: the second is refused while the first runs (two real
  processes), and a lock left by a killed batch is taken over;
- **limits**: ``.pt`` files are bounded before they are unpacked; checkpoints carry a digest; every stored
  setting is validated with bounds as its option is; globs follow each real folder once; thread counts,
  seeds and learning rates are bounded or folded;
- **errors**: a FIFO as audio input, NaN/inf options, output suffixes, deeply nested JSON, a non-UTF-8 file
  name, a huge pitch range, a junk soundfont, one bad batch row, a full disk: one ``error:`` line (exit 2),
  or an error row naming the file, and never a partial file.

With ``STYLEKIT_RELIABILITY_DATA_JSON=path`` the rows are written to ``path`` after the module ran;
docs/make_reliability_table.py adds them to docs/reliability.md.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner
from PIL import Image

from _audio_data import textureish, voiceish
from stylekit.cli import cli

SR = 16000
ROOT = Path(__file__).resolve().parent.parent
IMAGE_FAST = ["--size", "32", "--iterations", "2", "--scales", "1", "--device", "cpu"]
AUDIO_FAST = ["--steps", "2", "--griffin-lim-iters", "4", "-q"]

ROWS: list[dict] = []


@pytest.fixture(scope="module", autouse=True)
def _write_record():
    yield
    path = os.environ.get("STYLEKIT_RELIABILITY_DATA_JSON")
    if path:
        Path(path).write_text(json.dumps(ROWS, indent=1) + "\n")


def _record(group: str, case: str, command: str, detail: str) -> None:
    ROWS.append({"group": group, "case": case, "input": case, "command": command, "outcome": "handled",
                 "detail": detail, "handled": True})


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], prog_name="stylekit")
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def one_line_error(r, *needles) -> str:
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (r.exit_code, r.output)
    for n in needles:
        assert n.lower() in lines[0].lower(), lines[0]
    return lines[0]


def refused(group, case, command, r, *needles) -> str:
    line = one_line_error(r, *needles)
    _record(group, case, command, line)
    return line


def _img(p: Path, seed: int) -> Path:
    rng = np.random.RandomState(seed)
    Image.fromarray((rng.rand(32, 48, 3) * 255).astype("uint8")).save(p)
    return p


# --- fixtures: a tiny data set and model, sounds --------------------------------------------------------

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data set with a train and a test split of four synthetic notes (0.4 s, 16 kHz)."""
    root = tmp_path_factory.mktemp("notes")
    t = np.arange(int(0.4 * SR)) / SR
    for split in ("train", "test"):
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True)
        records = {}
        for i, pitch in enumerate((48, 55, 60, 67)):
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * np.exp(-3 * t)
            key = f"synth_{i:03d}-{pitch:03d}-100"
            sf.write(str(audio / f"{key}.wav"), (0.3 * y / np.abs(y).max()).astype(np.float32), SR,
                     subtype="PCM_16")
            records[key] = {"note": i, "note_str": key, "instrument": i, "instrument_str": f"synth_{i:03d}",
                            "pitch": pitch, "velocity": 100, "sample_rate": SR, "qualities": [0] * 10,
                            "qualities_str": [], "instrument_family": 9, "instrument_family_str": "synth_lead",
                            "instrument_source": 2, "instrument_source_str": "synthetic"}
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(records))
    return root


TRAIN_FAST = ["--model", "dae", "--latent", "4", "--epochs", "1", "--batch-frames", "32", "--seq-len", "8",
              "--segments-per-note", "0", "--n-fft", "64", "--hop", "32"]


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.pt"
    r = run("spectral", "train", data, *TRAIN_FAST, "-o", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    a, b = d / "a.wav", d / "b.wav"
    sf.write(str(a), voiceish(1.0, sr=SR), SR)
    sf.write(str(b), textureish(1.0, sr=SR), SR)
    return a, b


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


# --- 1. data safety: outputs are checked against every input, before any work ----------------------------

def test_eval_json_never_replaces_the_model_or_the_data_set(tmp_path, data, model):
    m = _copy(model, tmp_path / "m.pt")
    before = m.read_bytes()
    refused("data", "`eval --json` naming the model, with --overwrite", "stylekit spectral eval",
            run("spectral", "eval", m, data, "--perceptual-notes", "0", "--json", m, "--overwrite"),
            "same as an input")
    assert m.read_bytes() == before
    ex = data / "nsynth-test" / "examples.json"
    text = ex.read_text()
    refused("data", "`eval --json` naming the data set's examples.json, with --overwrite",
            "stylekit spectral eval",
            run("spectral", "eval", m, data, "--perceptual-notes", "0", "--json", ex, "--overwrite"),
            "same as an input")
    assert ex.read_text() == text
    os.link(m, tmp_path / "hard.json")           # the model under another name
    refused("data", "`eval --json` naming a hard link of the model", "stylekit spectral eval",
            run("spectral", "eval", m, data, "--perceptual-notes", "0", "--json", tmp_path / "hard.json",
                "--overwrite"), "same as an input")
    assert m.read_bytes() == before


def test_compare_encode_decode_morph_train_never_replace_an_input(tmp_path, data, model, wavs):
    m = _copy(model, tmp_path / "m.pt")
    before = m.read_bytes()
    refused("data", "`compare --table` naming a compared model", "stylekit spectral compare",
            run("spectral", "compare", m, "--data", data, "--perceptual-notes", "0", "--table", m,
                "--overwrite"), "same as an input")
    refused("data", "`compare --table` and `--plot` naming one file", "stylekit spectral compare",
            run("spectral", "compare", m, "--data", data, "--perceptual-notes", "0", "--table", tmp_path / "x.png", "--plot",
                tmp_path / "x.png"), "same as an input")
    a, b = wavs
    refused("data", "`encode -o` naming the --model", "stylekit spectral encode",
            run("spectral", "encode", a, "--model", m, "-o", m, "--overwrite"), "same as an input")
    refused("data", "`morph -o` naming note A, with --overwrite", "stylekit spectral morph",
            run("spectral", "morph", a, b, "-o", a, "--overwrite"), "same as an input")
    note = next((data / "nsynth-train" / "audio").iterdir())
    note_bytes = note.read_bytes()
    refused("data", "`train -o` naming a note of the training set", "stylekit spectral train",
            run("spectral", "train", data, *TRAIN_FAST, "-o", note, "--overwrite"), "same as an input")
    assert m.read_bytes() == before and note.read_bytes() == note_bytes


def test_train_never_replaces_a_foreign_file_at_the_resume_point_name(tmp_path, data):
    out = tmp_path / "m.pt"
    foreign = tmp_path / "m.pt.partial"
    foreign.write_text("my notes")
    refused("data", "a file of the user's named MODEL.pt.partial, with --overwrite", "stylekit spectral train",
            run("spectral", "train", data, *TRAIN_FAST, "-o", out, "--overwrite"), "not a stylekit resume point")
    assert foreign.read_text() == "my notes" and not out.exists()


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    return _img(d / "a.png", 1), _img(d / "b.png", 2), _img(d / "s.png", 3)


def _rows(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def test_batch_row_output_never_replaces_another_rows_input_or_style(tmp_path, images):
    a, b, s = images
    man = tmp_path / "in" / "m.jsonl"
    out = tmp_path / "out"
    out.mkdir()
    # row 2 writes OUT/../in/a.png... no: rows may only name outputs inside OUT; put a's copy inside OUT
    a_in_out = _copy(a, out / "x.png")
    man.write_text(json.dumps({"input": str(a_in_out), "style": "s.png", "output": "y.png"}) + "\n"
                   + json.dumps({"input": "b.png", "style": "s.png", "output": "x.png"}) + "\n"
                   + json.dumps({"input": "b.png", "style": str(out / "z.png"), "output": "z.png"}) + "\n")
    _copy(s, out / "z.png")
    before = (a_in_out.read_bytes(), (out / "z.png").read_bytes())
    r = run("batch", man, "-o", out, *IMAGE_FAST, "--workers", "0", "-q", "--overwrite")
    assert r.exit_code == 1, r.output
    rows = _rows(out / "results.jsonl")
    assert [x["status"] for x in rows] == ["done", "error", "error"], rows
    assert "would replace" in rows[1]["error"] and "x.png" in rows[1]["error"]
    assert (a_in_out.read_bytes(), (out / "z.png").read_bytes()) == before
    _record("data", "a manifest row whose output is another row's input / its own style, with --overwrite",
            "stylekit batch", f"exit 1, results row: {rows[1]['error']}")


def test_batch_results_never_replace_the_manifest(tmp_path, images):
    a, _, s = images
    man = tmp_path / "in" / "m.jsonl"
    man.write_text(json.dumps({"input": "a.png", "style": "s.png"}) + "\n")
    text = man.read_text()
    refused("data", "`batch --results` naming the manifest, with --overwrite", "stylekit batch",
            run("batch", man, "-o", tmp_path / "out", *IMAGE_FAST, "--workers", "0", "-q", "--results", man,
                "--overwrite"), "same as an input")
    style = _copy(s, tmp_path / "in" / "s.jsonl")       # a style image whose name ends in .jsonl
    refused("data", "`batch --results` naming the style, with --overwrite", "stylekit batch",
            run("batch", a, "--style", style, "-o", tmp_path / "out", *IMAGE_FAST, "--workers", "0", "-q",
                "--results", style, "--overwrite"), "results manifest")
    assert man.read_text() == text and style.read_bytes() == s.read_bytes()


@pytest.mark.parametrize("output", ["../../escaped.png", "/tmp/stylekit-escaped.png", "link/escaped.png"])
def test_batch_outputs_never_leave_the_output_folder(tmp_path, images, output):
    a, _, s = images
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(tmp_path / "in")
    man = tmp_path / "in" / "m.jsonl"
    man.write_text(json.dumps({"input": "a.png", "style": "s.png", "output": output}) + "\n"
                   + json.dumps({"input": "b.png", "style": "s.png"}) + "\n")
    r = run("batch", man, "-o", out, *IMAGE_FAST, "--workers", "0", "-q")
    assert r.exit_code == 1, r.output
    rows = _rows(out / "results.jsonl")
    assert rows[0]["status"] == "error" and "outside the output folder" in rows[0]["error"], rows[0]
    assert rows[1]["status"] == "done"
    assert not (tmp_path.parent / "escaped.png").exists() and not Path("/tmp/stylekit-escaped.png").exists()
    assert not (tmp_path / "in" / "escaped.png").exists()
    _record("data", f"a manifest output {output!r}", "stylekit batch", f"exit 1, results row: {rows[0]['error']}")


def _stylekit(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "stylekit", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_two_batches_on_one_folder_the_second_is_refused_and_a_stale_lock_is_taken_over(tmp_path, images):
    a, b, s = images
    out = tmp_path / "out"
    first = _stylekit("batch", a, b, "--style", s, "-o", out, "--size", "64", "--iterations", "400", "--scales",
                      "1", "--device", "cpu", "--workers", "0", "-q")
    lock = out / ".stylekit-batch.lock"
    try:
        deadline = time.monotonic() + 120
        while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert lock.exists(), first.communicate()
        second = _stylekit("batch", a, b, "--style", s, "-o", out, *IMAGE_FAST, "--workers", "0", "-q")
        _, err = second.communicate(timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert second.returncode == 2 and len(lines) == 1 and "another batch" in lines[0], err
        assert first.poll() is None, "the first batch must still run"
        _record("data", "a second batch on a folder a running batch writes (two processes)", "stylekit batch",
                lines[0])
    finally:
        first.send_signal(signal.SIGKILL)         # leaves its lock behind: a stale lock of a dead process
        first.communicate()
    assert lock.exists()
    third = _stylekit("batch", a, b, "--style", s, "-o", out, *IMAGE_FAST, "--workers", "0", "-q")
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert not lock.exists() and (out / "a.png").is_file() and (out / "b.png").is_file()
    _record("data", "a batch after one killed with SIGKILL left its lock (a dead pid)", "stylekit batch",
            "exit 0: the stale lock is taken over, both outputs written, the lock removed")


def test_two_runs_to_one_output_the_second_is_refused_even_with_overwrite(tmp_path, images):
    a, _, s = images
    out = tmp_path / "out.png"
    lock = tmp_path / ".out.png.stylekit-lock"
    first = _stylekit("image", a, s, "-o", out, "--size", "64", "--iterations", "400", "--scales", "1",
                      "--device", "cpu", "-q", "--overwrite")
    try:
        deadline = time.monotonic() + 120
        while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert lock.exists(), first.communicate()
        second = _stylekit("image", a, s, "-o", out, *IMAGE_FAST, "--overwrite", "-q")
        _, err = second.communicate(timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert second.returncode == 2 and len(lines) == 1 and "another stylekit run" in lines[0], err
        assert first.poll() is None and not out.exists(), "the first run must still run, and nothing be written"
        _record("data", "a second run, with --overwrite, to an output a running run writes (two processes)",
                "stylekit image", lines[0])
    finally:
        first.send_signal(signal.SIGKILL)         # leaves its lock behind: a stale lock of a dead process
        first.communicate()
    assert lock.exists()
    third = _stylekit("image", a, s, "-o", out, *IMAGE_FAST, "-q")
    _, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert not lock.exists() and out.is_file()
    _record("data", "a run after one killed with SIGKILL left its output lock (a dead pid)", "stylekit image",
            "exit 0: the stale lock is taken over, the output written, the lock removed")


# --- 2. limits: bounded .pt files, digests, stored settings validated, globs -----------------------------

def _recompress(src: Path, dst: Path) -> Path:
    """``src``'s zip archive with every entry deflated (what torch.save never writes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return dst


def _bomb(dst: Path) -> Path:
    """A 100 kB .pt whose one entry inflates to 100 MB."""
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\0" * (100 << 20))
    return dst


def _claims_more(src: Path, dst: Path) -> Path:
    """``src`` with its central directory claiming that its largest (stored) entry is 2 GB."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        biggest = max(z.infolist(), key=lambda i: i.file_size).filename.encode()
        pos = z.start_dir
    while raw[pos:pos + 4] == b"PK\x01\x02":
        n, m, k = (int.from_bytes(raw[pos + o:pos + o + 2], "little") for o in (28, 30, 32))
        if raw[pos + 46:pos + 46 + n] == biggest:
            raw[pos + 20:pos + 28] = (2 << 30).to_bytes(4, "little") * 2   # compressed, uncompressed size
            break
        pos += 46 + n + m + k
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize("kind", ["deflated", "bomb", "claims_more"])
def test_pt_files_are_bounded_before_they_are_unpacked(tmp_path, model, wavs, kind):
    from stylekit._checkpoint import UnloadableFile, load_torch_file
    bad = tmp_path / f"{kind}.pt"
    {"deflated": lambda: _recompress(model, bad), "bomb": lambda: _bomb(bad),
     "claims_more": lambda: _claims_more(model, bad)}[kind]()
    with pytest.raises(UnloadableFile):
        load_torch_file(bad)
    a, _ = wavs
    refused("limits", f".pt model file: {kind} entries", "stylekit spectral encode",
            run("spectral", "encode", a, "--model", bad, "-o", tmp_path / "z.pt"), bad.name)
    assert not (tmp_path / "z.pt").exists()


def _audio_checkpoint(tmp_path, wavs) -> Path:
    """A real `stylekit audio` checkpoint, from an interrupted run."""
    from stylekit._checkpoint import write_checkpoint
    from stylekit.audio.config import AudioStyleConfig
    from stylekit.audio.job import CHECKPOINT_FORMAT
    a, b = wavs
    return write_checkpoint(tmp_path / "c.ckpt.pt", CHECKPOINT_FORMAT, [a, b],
                            {"config": AudioStyleConfig(steps=2).to_dict(),
                             "state": {"chunk": 0, "done": [], "state": None}}, overwrite=False)


def _edit(path: Path, change, *, digest: bool) -> None:
    from stylekit._checkpoint import tree_digest
    data = torch.load(path, weights_only=True)
    change(data)
    if digest:
        data["digest"] = tree_digest({k: v for k, v in data.items() if k != "digest"})
    torch.save(data, path)


def _set_config(key, value):
    def change(d):
        d["config"][key] = value
    return change


AUDIO_CHECKPOINT_CASES = {
    "a flipped byte in the stored state": (lambda p: _flip(p), "digest"),
    "an edited setting (digest not recomputed)": (lambda p: _edit(p, _set_config("style_weight", 99.0),
                                                                  digest=False), "digest"),
    "threads 100000 (digest recomputed)": (lambda p: _edit(p, _set_config("threads", 100000), digest=True),
                                           "threads"),
    "channels 10**9 (digest recomputed)": (lambda p: _edit(p, _set_config("channels", 10 ** 9), digest=True),
                                           "channels"),
    "griffin_lim_iters 10**9 (digest recomputed)": (
        lambda p: _edit(p, lambda d: d["config"]["spectrogram"].__setitem__("griffin_lim_iters", 10 ** 9),
                        digest=True), "griffin_lim_iters"),
    "an unexpected key (digest recomputed)": (lambda p: _edit(p, _set_config("surprise", 1), digest=True),
                                              "surprise"),
    "a checkpoint of an older stylekit, without a digest": (
        lambda p: _edit(p, lambda d: d.pop("digest"), digest=False), "older stylekit"),
    "a NaN tensor in the state (digest recomputed)": (
        lambda p: _edit(p, lambda d: d["state"].__setitem__("x", torch.full((3,), float("nan"))), digest=True),
        "nan"),
}


def _flip(p: Path) -> None:
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("data.pkl")))
    at = info.header_offset + 30 + len(info.filename.encode()) + info.file_size // 2
    raw[at] ^= 0x01
    p.write_bytes(bytes(raw))


@pytest.mark.parametrize("case", list(AUDIO_CHECKPOINT_CASES))
def test_audio_checkpoint_fields_are_checked_like_the_options(tmp_path, wavs, case):
    make, needle = AUDIO_CHECKPOINT_CASES[case]
    ckpt = _audio_checkpoint(tmp_path, wavs)
    make(ckpt)
    a, b = wavs
    out = tmp_path / "o.wav"
    r = run("audio", a, b, "-o", out, *AUDIO_FAST, "--resume", ckpt)
    if r.exit_code == 2:
        refused("limits", f"audio checkpoint: {case}", "stylekit audio --resume", r, ckpt.name)
    else:   # a flipped byte may land where the loader itself refuses it; never a result from a bad file
        raise AssertionError(r.output)
    assert not out.exists()


def _image_checkpoint(tmp_path, images, x: torch.Tensor, **state) -> Path:
    """An image checkpoint of a 32 px one-scale run, holding the optimiser state ``x`` (and ``state``)."""
    from stylekit._checkpoint import write_checkpoint
    from stylekit.image.config import ImageStyleConfig
    from stylekit.image.job import CHECKPOINT_FORMAT
    a, _, s = images
    config = ImageStyleConfig(size=32, iterations=2, scales=1, device="cpu").to_dict()
    full = {"x": x, "best": x.clone(), "best_loss": float("inf"), "step": 0, "scale": 0, "kind": "lbfgs",
            "optimizer": {}, **state}
    return write_checkpoint(tmp_path / "c.ckpt.pt", CHECKPOINT_FORMAT, [a, s], {"config": config, "state": full},
                            overwrite=False)


RUN_SHAPE = (1, 3, 21, 32)     # a 48x32 content at --size 32, one scale


IMAGE_STATE_CASES = {
    "64 channels": (lambda: torch.rand(1, 64, 8, 8), {}, "damaged"),
    "an image larger than the run's size": (lambda: torch.rand(1, 3, 32, 200), {}, "damaged"),
    "an image of another shape than the scale's": (lambda: torch.rand(1, 3, 7, 5), {}, "does not match"),
    "a NaN image": (lambda: torch.full(RUN_SHAPE, float("nan")), {}, "infinite"),
    "a step past the run's end": (lambda: torch.rand(RUN_SHAPE), {"step": 10 ** 6}, "does not match"),
    "another optimiser's state": (lambda: torch.rand(RUN_SHAPE), {"kind": "adam"}, "does not match"),
    "a negative scale": (lambda: torch.rand(RUN_SHAPE), {"scale": -1}, "damaged"),
}


@pytest.mark.parametrize("case", list(IMAGE_STATE_CASES))
def test_image_checkpoint_state_is_checked_against_the_run(tmp_path, images, case):
    make, state, needle = IMAGE_STATE_CASES[case]
    a, _, s = images
    ckpt = _image_checkpoint(tmp_path, images, make(), **state)
    out = tmp_path / "o.png"
    r = run("image", a, s, "-o", out, *IMAGE_FAST, "--resume", ckpt)
    refused("limits", f"image checkpoint: {case}", "stylekit image --resume", r, needle)
    assert not out.exists()


def test_spectral_model_settings_are_bounded(tmp_path, model, wavs):
    from stylekit.spectral.models import _digest
    ck = torch.load(model, weights_only=True)
    ck["stft"]["griffin_lim_iters"] = 10 ** 9
    header = {k: ck[k] for k in ("format", "model", "config", "stft", "meta")}
    ck["digest"] = _digest(header, ck["state_dict"])
    bad = tmp_path / "gl.pt"
    torch.save(ck, bad)
    a, _ = wavs
    t0 = time.monotonic()
    refused("limits", "spectral model with griffin_lim_iters = 10**9 (digest recomputed)",
            "stylekit spectral encode", run("spectral", "encode", a, "--model", bad, "-o", tmp_path / "z.pt"),
            "griffin_lim_iters")
    assert time.monotonic() - t0 < 30
    ck = torch.load(model, weights_only=True)
    ck["config"]["hidden"] = [10 ** 7]
    header = {k: ck[k] for k in ("format", "model", "config", "stft", "meta")}
    ck["digest"] = _digest(header, ck["state_dict"])
    torch.save(ck, bad)
    refused("limits", "spectral model with a hidden layer of 10**7 units (digest recomputed)",
            "stylekit spectral encode", run("spectral", "encode", a, "--model", bad, "-o", tmp_path / "z.pt"),
            "hidden")


def test_glob_follows_each_real_folder_once(tmp_path):
    from stylekit.batch.manifest import collect_items
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    _img(d / "a.png", 1)
    _img(d / "sub" / "b.png", 2)
    s = _img(tmp_path / "s.png", 3)
    (d / "sub" / "up").symlink_to(d)           # a loop
    (d / "again").symlink_to(d / "sub")        # a second way into sub
    items = collect_items([str(d / "**" / "*.png")], tmp_path / "out", styles=[s])
    assert sorted(it.input.name for it in items) == ["a.png", "b.png"], items
    _record("limits", "a glob over a folder with a symbolic-link loop (2 images)", "stylekit batch",
            f"{len(items)} items: each real folder is followed once")


@pytest.mark.parametrize("command", ["spectral", "audio", "batch"])
def test_thread_counts_are_bounded(tmp_path, data, wavs, images, command):
    a, b = wavs
    args = {"spectral": ["spectral", "train", data, *TRAIN_FAST, "-o", tmp_path / "m.pt"],
            "audio": ["audio", a, b, "-o", tmp_path / "o.wav", *AUDIO_FAST],
            "batch": ["batch", images[0], "--style", images[2], "-o", tmp_path / "out", *IMAGE_FAST, "-q"]}[command]
    for n in ("100000", "-1"):
        refused("limits", f"--threads {n}", f"stylekit {' '.join(map(str, args[:2 if command == 'spectral' else 1]))}",
                run(*args, "--threads", n), "threads")


def test_any_integer_seed_is_accepted(tmp_path, data, wavs):
    from stylekit.audio.config import AudioStyleConfig
    from stylekit.spectral.config import TrainConfig
    huge = 2 ** 70
    assert 0 <= TrainConfig(seed=huge).seed < 2 ** 32 and TrainConfig(seed=-1).seed == TrainConfig(seed=-1).seed
    assert AudioStyleConfig(seed=huge).seed < 2 ** 64 and AudioStyleConfig(seed=-1).seed == -1
    r = run("spectral", "train", data, *TRAIN_FAST, "--seed", str(-huge), "-o", tmp_path / "m.pt")
    assert r.exit_code == 0, r.output
    a, b = wavs
    r = run("audio", a, b, "-o", tmp_path / "o.wav", *AUDIO_FAST, "--seed", str(huge))
    assert r.exit_code == 0, r.output
    r = run("spectral", "morph", a, b, "-o", tmp_path / "m.wav", "--seed", str(huge))
    assert r.exit_code == 0, r.output
    _record("limits", "seeds 2**70 and -2**70 (spectral train, audio, morph)", "stylekit",
            "exit 0: a seed outside a generator's range is folded into it by sha256 (the same seed, the same run)")


# --- 3. errors: one line, exit 2, nothing partial --------------------------------------------------------

def test_a_fifo_as_audio_input_is_refused_not_waited_on(tmp_path, wavs):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    _, b = wavs
    for args in (["audio", fifo, b, "-o", tmp_path / "o.wav", *AUDIO_FAST],
                 ["spectral", "encode", fifo, "-o", tmp_path / "z.pt"]):
        p = _stylekit(*args)
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"{args[0]} hangs on a FIFO")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and "not a regular file" in lines[0], err
        _record("errors", "a FIFO as the content", f"stylekit {args[0]}", lines[0])


def test_audio_reading_is_bounded(tmp_path, monkeypatch):
    from stylekit.audio import io as aio
    from stylekit.errors import InputError
    y = np.stack([voiceish(0.5, sr=SR)] * 6, axis=1)
    p = tmp_path / "six.wav"
    sf.write(str(p), y, SR)
    n = len(y)
    monkeypatch.setattr(aio, "MAX_DECODED_BYTES", n * 8 * 2)       # fits mono, not six channels
    data, rate = aio.read_audio(p)
    assert data.shape == (n, 1) and rate == SR
    assert np.allclose(data[:, 0], y.mean(axis=1), atol=1e-4)
    monkeypatch.setattr(aio, "MAX_DECODED_BYTES", n * 4)
    with pytest.raises(InputError, match="the limit is"):
        aio.read_audio(p)
    _record("errors", "audio whose samples exceed the read limit (6 channels)", "stylekit audio (read_audio)",
            "mixed down to mono while read when the mono mix fits; else refused with its size and the limit")


@pytest.mark.parametrize("option,value", [("--lr", "nan"), ("--lr", "inf"), ("--lr", "1e300"), ("--beta", "nan"),
                                          ("--beta", "-inf"), ("--top-db", "nan"), ("--top-db", "inf")])
def test_spectral_train_refuses_non_finite_settings(tmp_path, data, option, value):
    out = tmp_path / "m.pt"
    refused("errors", f"{option} {value}", "stylekit spectral train",
            run("spectral", "train", data, *TRAIN_FAST, option, value, "-o", out), option.strip("-").replace("-", "_"))
    assert not out.exists() and not (tmp_path / "m.pt.partial").exists()


def test_training_that_diverges_writes_nothing(tmp_path, data, monkeypatch):
    from stylekit.spectral import train as train_mod
    real = train_mod.fit

    def poisoned(model, *a, **k):
        out = real(model, *a, **k)
        with torch.no_grad():
            next(iter(model.parameters())).fill_(float("nan"))
        return out
    monkeypatch.setattr(train_mod, "fit", poisoned)
    out = tmp_path / "m.pt"
    refused("errors", "training whose weights become NaN", "stylekit spectral train",
            run("spectral", "train", data, *TRAIN_FAST, "-o", out), "diverged")
    assert not out.exists()


def test_output_suffixes_are_checked_before_any_work(tmp_path, data, model, wavs, monkeypatch):
    from stylekit.spectral import resynth
    a, b = wavs
    z = tmp_path / "z.pt"
    assert run("spectral", "encode", a, "-o", z).exit_code == 0

    def never(*args, **kw):
        raise AssertionError("the work ran before the output was checked")
    monkeypatch.setattr(resynth, "load", never)
    refused("errors", "`decode -o x.mp3`", "stylekit spectral decode",
            run("spectral", "decode", z, "-o", tmp_path / "x.mp3"), ".wav")
    refused("errors", "`morph -o` without a suffix", "stylekit spectral morph",
            run("spectral", "morph", a, b, "-o", tmp_path / "noext"), ".wav")
    refused("errors", "`compare --plot x.xyz`", "stylekit spectral compare",
            run("spectral", "compare", model, "--data", data, "--plot", tmp_path / "x.xyz"), ".png")


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deeply_nested_json_is_one_line(tmp_path, data, model, images):
    bad = tmp_path / "deep"
    shutil.copytree(data, bad)
    (bad / "nsynth-test" / "examples.json").write_text(_nested(100_000))
    refused("errors", "examples.json nested 100000 levels deep", "stylekit spectral eval",
            run("spectral", "eval", model, bad, "--perceptual-notes", "0"), "examples.json")
    res = tmp_path / "r.json"
    res.write_text(_nested(100_000))
    refused("errors", "an eval result nested 100000 levels deep", "stylekit spectral compare",
            run("spectral", "compare", res), "r.json")
    a, _, s = images
    man = tmp_path / "in" / "m.jsonl"
    man.write_text(json.dumps({"input": "a.png", "style": "s.png"}) + "\n" + _nested(100_000) + "\n")
    refused("errors", "a .jsonl manifest line nested 100000 levels deep", "stylekit batch",
            run("batch", man, "-o", tmp_path / "out", *IMAGE_FAST, "--workers", "0", "-q"), "m.jsonl:2")


def test_a_non_utf8_file_name_with_a_csv_results_manifest(tmp_path, images):
    a, _, s = images
    odd = Path(os.fsdecode(bytes(tmp_path / "in") + b"/caf\xe9.png"))
    shutil.copyfile(a, odd)
    out = tmp_path / "out"
    r = run("batch", odd, "--style", s, "-o", out, *IMAGE_FAST, "--workers", "0", "-q", "--results",
            tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    from stylekit.batch.manifest import read_results
    rows = read_results(tmp_path / "r.csv")
    assert rows[0]["input"] == str(odd) and rows[0]["status"] == "done"
    _record("errors", "a file name that is not UTF-8, with `--results x.csv`", "stylekit batch",
            "exit 0: the name is written as its own bytes and reads back the same")


def test_a_huge_pitch_range_is_refused_before_it_is_built(tmp_path):
    t0 = time.monotonic()
    refused("errors", "`--pitches 60-99999999999`", "stylekit spectral synth",
            run("spectral", "synth", tmp_path / "ds", "--pitches", "60-99999999999"), "pitches")
    assert time.monotonic() - t0 < 10


def test_a_junk_soundfont_is_refused(tmp_path):
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"this is not a soundfont" * 100)
    refused("errors", "`--soundfont junk.sf2`", "stylekit spectral synth",
            run("spectral", "synth", tmp_path / "ds", "--soundfont", junk, "--programs", "0,8,16", "--pitches",
                "60", "--velocities", "100"), "junk.sf2")
    assert not (tmp_path / "ds" / "nsynth-train").exists()


def test_one_bad_batch_row_fails_only_itself_naming_its_file(tmp_path, images):
    a, b, s = images
    man = tmp_path / "in" / "m.jsonl"
    man.write_text(json.dumps({"input": "a.png", "style": "s.png"}) + "\n"
                   + json.dumps({"input": "b.png", "style": "s.png", "seed": 2 ** 70}) + "\n")
    out = tmp_path / "out"
    r = run("batch", man, "-o", out, *IMAGE_FAST, "--workers", "0", "-q")
    rows = _rows(out / "results.jsonl")
    assert rows[0]["status"] == "done", rows
    assert rows[1]["status"] == "done" or "b.png" in rows[1]["error"], rows[1]
    assert r.exit_code == (0 if rows[1]["status"] == "done" else 1)
    _record("errors", "a manifest row with seed 2**70 beside a good row", "stylekit batch",
            f"the good row done; the row: {rows[1]['status']}" + (f" ({rows[1]['error']})" if rows[1]["error"]
                                                                   else ""))


# --- a full disk ----------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 64 kB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()[:80]})")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)


def _fill(d: Path) -> None:
    """Fill the small disk to the last byte."""
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk, data, model, wavs, images):
    a, b = wavs
    z = tmp_path / "z.pt"
    assert run("spectral", "encode", a, "-o", z).exit_code == 0
    cases = [("spectral decode (WAV)", ["spectral", "decode", z, "-o", small_disk / "d.wav"]),
             ("spectral train (.pt)", ["spectral", "train", data, *TRAIN_FAST, "-o", small_disk / "m.pt"]),
             ("spectral eval --json", ["spectral", "eval", model, data, "--perceptual-notes", "0", "--json",
                                       small_disk / "r.json"]),
             ("audio (WAV)", ["audio", a, b, "-o", small_disk / "o.wav", *AUDIO_FAST]),
             ("batch --results", ["batch", images[0], "--style", images[2], "-o", tmp_path / "bout", *IMAGE_FAST,
                                  "--workers", "0", "-q", "--results", small_disk / "r.jsonl"])]
    for what, args in cases:
        _fill(small_disk)
        r = run(*args)
        if args[0] == "batch":
            lines = [ln for ln in r.output.splitlines() if ln.strip()]
            assert r.exit_code == 2 and len(lines) == 1 and "r.jsonl" in lines[0], r.output
            _record("errors", f"a full disk: {what}", f"stylekit {args[0]}", lines[0])
        else:
            refused("errors", f"a full disk: {what}", f"stylekit {' '.join(map(str, args[:2]))}", r,
                    "no space left")
        assert sorted(p.name for p in small_disk.iterdir()) == ["filler"], list(small_disk.iterdir())
        (small_disk / "filler").unlink()
