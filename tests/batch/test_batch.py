"""`stylekit batch`: planning, the local engine (worker processes) and the Ray engine, on 20 tiny images.

The expensive runs (spawned workers, a Ray session) are few and shared; each asserts several properties.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import smooth_image, stripes_image
from PIL import Image

from stylekit.audio.config import AudioStyleConfig
from stylekit.batch import collect_items, read_results, run_batch
from stylekit.cli import cli
from stylekit.errors import ConfigError
from stylekit.image import ImageStyleConfig, load_image, save_image, stylize_image

# noise init: the seed decides the result, so "identical to a single run with the same seed" means something.
# Two shallow layers: the network is cut after relu2_1, which makes a run about five times cheaper than the
# default five style layers (what a batch shares and guarantees does not depend on the layers).
CFG = ImageStyleConfig(size=32, iterations=2, scales=1, init="noise", seed=7, device="cpu",
                       content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 0.5, "relu2_1": 0.5})
FAST = ["--size", "32", "--iterations", "2", "--scales", "1", "--init", "noise", "--seed", "7", "--device", "cpu",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1:0.5,relu2_1:0.5"]
N = 20
CHECKED = (0, 6, 13, 19)  # inputs whose batch output is compared with a single run


@pytest.fixture(autouse=True)
def cpu_backend_as_before():
    """The command turns the CPU convolution backend on in its process (this one, under CliRunner): each test
    starts with the session's setting, so the single runs and the batches compared with them agree."""
    from stylekit.features import cpu_backend
    before = cpu_backend.enabled()
    yield
    cpu_backend.enable(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    inp = root / "in"
    inp.mkdir()
    for i in range(N):
        smooth_image(40 - (i % 3) * 4, 30, 100 + i).save(inp / f"img{i:02d}.png")
    (inp / "notes.txt").write_text("not an image, and not picked up from a folder")
    style = root / "style.jpg"
    stripes_image(40, 40).save(style, quality=95)
    return root, inp, style


@pytest.fixture(scope="module")
def references(data, tmp_path_factory):
    """Pixels of single `stylize_image` runs (no cache, same config) for the CHECKED inputs."""
    root, inp, style = data
    d = tmp_path_factory.mktemp("ref")
    out = {}
    for i in CHECKED:
        x = stylize_image(load_image(inp / f"img{i:02d}.png"), [load_image(style)], config=CFG).data
        save_image(x, d / f"{i}.png")
        out[i] = np.asarray(Image.open(d / f"{i}.png"))
    return out


def pixels(path):
    return np.asarray(Image.open(path))


def assert_matches_single_runs(rows, references):
    for i in CHECKED:
        assert np.array_equal(pixels(rows[i]["output"]), references[i]), f"input {i} differs from a single run"


# --- planning ---------------------------------------------------------------------------------------------

def test_collect_folder_glob_and_file(tmp_path, data):
    root, inp, style = data
    items = collect_items([inp], tmp_path / "o", styles=[style], config=CFG, fmt="jpg")
    assert [it.input.name for it in items] == [f"img{i:02d}.png" for i in range(N)]  # notes.txt ignored
    assert items[3].output == tmp_path / "o" / "img03.jpg" and items[3].styles == (style,)
    assert all(it.config == CFG and it.error is None for it in items)

    (tmp_path / "g" / "sub").mkdir(parents=True)
    smooth_image(20, 20, 1).save(tmp_path / "g" / "a.png")
    smooth_image(20, 20, 2).save(tmp_path / "g" / "sub" / "a.png")
    items = collect_items([str(tmp_path / "g" / "**" / "*.png")], tmp_path / "o", styles=[style], config=CFG)
    assert sorted(str(it.output.relative_to(tmp_path / "o")) for it in items) == ["a.png", "sub/a.png"]
    # outputs written below the pattern's folder are not inputs of the next run
    (tmp_path / "g" / "out").mkdir()
    smooth_image(20, 20, 3).save(tmp_path / "g" / "out" / "a.png")
    items = collect_items([str(tmp_path / "g" / "**" / "*.png")], tmp_path / "g" / "out", styles=[style])
    assert sorted(str(it.input.relative_to(tmp_path / "g")) for it in items) == ["a.png", "sub/a.png"]

    with pytest.raises(ConfigError, match="no files match"):
        collect_items([str(tmp_path / "nothing*.png")], tmp_path / "o", styles=[style])
    with pytest.raises(ConfigError, match="no such file"):
        collect_items([tmp_path / "missing.png"], tmp_path / "o", styles=[style])
    with pytest.raises(ConfigError, match="is the input folder"):
        collect_items([inp], inp, styles=[style])
    single = tmp_path / "o" / "img00.png"
    single.parent.mkdir(exist_ok=True)
    single.write_bytes((inp / "img00.png").read_bytes())
    with pytest.raises(ConfigError, match="replace its input"):
        collect_items([single], tmp_path / "o", styles=[style])


def test_collect_manifests_with_overrides(tmp_path, data):
    root, inp, style = data
    csv_path = tmp_path / "jobs.csv"
    csv_path.write_text(
        "input,style,output,style-weight,seed,style_layers\n"
        f"{inp}/img00.png,{style},first.png,2.5,,\n"
        f"{inp}/img01.png,{style};{style},,,3,relu1_1:0.5\n"
        f"{inp}/img02.png,,,heavy,,\n"              # bad override: that row only becomes an error
        f"{inp}/img03.png,,,,,\n")                  # no style column value: falls back to --style
    items = collect_items([csv_path], tmp_path / "o", styles=[style], config=CFG)
    assert items[0].output == tmp_path / "o" / "first.png" and items[0].config.style_weight == 2.5
    assert items[0].config.seed == 7
    assert items[1].styles == (style, style) and items[1].config.seed == 3
    assert dict(items[1].config.style_layers) == {"relu1_1": 0.5}
    assert items[2].config is None and "jobs.csv:4" in items[2].error and "style_weight" in items[2].error
    assert items[3].styles == (style,) and items[3].config == CFG

    jl = tmp_path / "sub" / "jobs.jsonl"
    jl.parent.mkdir()
    (tmp_path / "sub" / "c.png").write_bytes((inp / "img05.png").read_bytes())
    jl.write_text(json.dumps({"input": "c.png", "style": [str(style)], "iterations": 5, "style_blend": [1]}) + "\n"
                  + json.dumps({"input": "c.png", "output": "c2.png", "size": -3}) + "\n")
    a, b = collect_items([jl], tmp_path / "o", config=CFG)
    assert a.input == tmp_path / "sub" / "c.png"  # relative to the manifest
    assert a.config.iterations == 5 and a.config.style_blend == (1,)
    assert b.config is None and "jobs.jsonl:2" in b.error and "size must be an integer in 1.." in b.error

    bad = tmp_path / "bad.csv"
    bad.write_text("input,colour\nx.png,red\n")
    with pytest.raises(ConfigError, match="unknown column 'colour'"):
        collect_items([bad], tmp_path / "o", styles=[style])
    dup = tmp_path / "dup.csv"
    dup.write_text(f"input\n{inp}/img00.png\n{inp}/img00.png\n")
    with pytest.raises(ConfigError, match="both write"):
        collect_items([dup], tmp_path / "o", styles=[style])


# --- the local engine ---------------------------------------------------------------------------------------

def test_local_engine_20_images_killed_worker_retried_and_rerun_skips(tmp_path, data, references):
    root, inp, style = data
    out = tmp_path / "out"
    items = collect_items([inp], out, styles=[style], config=CFG)
    assert len(items) == N
    killed = []
    started = []

    def on_start(index, pid):
        started.append(index)
        if index == 5 and not killed:  # a worker dies in the middle of an item
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    seen = []
    rows = run_batch(items, workers=2, threads=1, results=out / "results.csv", on_start=on_start,
                     on_result=seen.append)
    assert killed and started.count(5) == 2
    assert [r["status"] for r in rows] == ["done"] * N, [r["error"] for r in rows if r["error"]]
    assert rows[5]["attempts"] == 2 and all(r["attempts"] == 1 for r in rows if r["index"] != 5)
    assert sorted(r["index"] for r in seen) == list(range(N))
    assert_matches_single_runs(rows, references)
    # the results manifest: one row per input with its settings and time
    table = read_results(out / "results.csv")
    assert [r["output"] for r in table] == [str(out / f"img{i:02d}.png") for i in range(N)]
    assert table[5]["status"] == "done" and float(table[5]["seconds"]) > 0
    assert table[0]["settings"]["seed"] == 7 and table[0]["settings"]["size"] == 32

    # a rerun skips everything done; a removed output is the only one made again
    mtimes = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(out / "*.png"))}
    (out / "img04.png").unlink()
    rows2 = run_batch(items, workers=1, threads=1, results=out / "results.csv")
    assert [r["status"] for r in rows2] == ["skipped"] * 4 + ["done"] + ["skipped"] * (N - 5)
    assert all(os.stat(p).st_mtime_ns == t for p, t in mtimes.items() if not p.endswith("img04.png"))
    assert rows2[0]["seconds"] == rows[0]["seconds"]  # read back from the output's metadata
    assert [r["status"] for r in read_results(out / "results.csv")] == [r["status"] for r in rows2]


def test_isolation_and_settings_guard_in_process(tmp_path, data):
    root, inp, style = data
    (tmp_path / "broken.png").write_bytes(b"not a png")
    man = tmp_path / "jobs.csv"
    man.write_text(f"input,style,iterations\n{inp}/img00.png,{style},\nbroken.png,{style},\n"
                   f"missing.png,{style},\n{inp}/img01.png,{style},0\n{inp}/img02.png,nostyle.png,\n"
                   f"{inp}/img03.png,{style},\n")
    out = tmp_path / "out"
    items = collect_items([man], out, config=CFG)
    rows = run_batch(items, workers=0, results=out / "r.jsonl")
    status = [r["status"] for r in rows]
    assert status == ["done", "error", "error", "error", "error", "done"]
    assert "broken.png: not an image" in rows[1]["error"]
    assert "missing.png: no such file" in rows[2]["error"]
    assert "iterations" in rows[3]["error"]
    assert "nostyle.png" in rows[4]["error"]
    assert not (out / "broken.png").exists()

    # an existing output made with other settings is never silently kept or replaced
    other = collect_items([man], out, config=ImageStyleConfig(**{**CFG.to_dict(), "seed": 8}))
    before = (out / "img00.png").read_bytes()
    rows = run_batch([other[0]], workers=0)
    assert rows[0]["status"] == "error" and "other settings" in rows[0]["error"]
    assert (out / "img00.png").read_bytes() == before
    rows = run_batch([other[0]], workers=0, overwrite=True)
    assert rows[0]["status"] == "done" and (out / "img00.png").read_bytes() != before


def run_cli(*args):
    return CliRunner().invoke(cli, ["batch", *map(str, args)], catch_exceptions=False)


def one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


def test_cli_runs_and_reports(tmp_path, data):
    root, inp, style = data
    (tmp_path / "two").mkdir()
    for i in (0, 1):
        (tmp_path / "two" / f"img{i}.png").write_bytes((inp / f"img{i:02d}.png").read_bytes())
    (tmp_path / "two" / "zbad.png").write_bytes(b"nope")
    out = tmp_path / "out"
    r = run_cli(tmp_path / "two", "-o", out, "--style", style, *FAST, "--workers", "0", "-q")
    assert r.exit_code == 1, r.output  # one input failed: reported, the others written
    rows = read_results(out / "results.jsonl")
    assert [x["status"] for x in rows] == ["done", "done", "error"]
    assert rows[0]["settings"]["iterations"] == 2 and rows[0]["settings"]["init"] == "noise"
    assert load_image(out / "img0.png").shape == (1, 3, 24, 32)

    (tmp_path / "two" / "zbad.png").unlink()
    r = run_cli(tmp_path / "two", "-o", out, "--style", style, *FAST, "--workers", "0")
    assert r.exit_code == 0 and "0 done, 2 skipped, 0 failed" in r.output


@pytest.mark.parametrize("extra,needle", [
    ([], "no style: pass --style"),
    (["--style", "S", "--address", "auto"], "--address is for the ray engine"),
    (["--style", "S", "--workers", "-1"], "workers"),
    (["--style", "S", "--iterations", "0"], "iterations"),
    (["--style", "S", "--results", "R"], "not a stylekit results manifest"),
])
def test_cli_user_errors_are_one_line(tmp_path, data, extra, needle):
    root, inp, style = data
    precious = tmp_path / "precious.jsonl"
    precious.write_text("my own notes\n")
    extra = [str(style) if a == "S" else str(precious) if a == "R" else a for a in extra]
    line = one_line_error(run_cli(inp, "-o", tmp_path / "out", *FAST, "--workers", "0", *extra, "-q"))
    assert needle in line
    assert precious.read_text() == "my own notes\n"
    assert not list(tmp_path.glob("out/*.png"))


def test_cli_unknown_manifest_column(tmp_path, data):
    root, inp, style = data
    m = tmp_path / "m.csv"
    m.write_text("input,stlye\na.png,b.png\n")
    assert "unknown column 'stlye'" in one_line_error(run_cli(m, "-o", tmp_path / "out", "-q"))


def test_ray_missing_is_a_config_error(tmp_path, data, monkeypatch):
    import sys
    root, inp, style = data
    monkeypatch.setitem(sys.modules, "ray", None)
    items = collect_items([inp], tmp_path / "o", styles=[style], config=CFG)
    with pytest.raises(ConfigError, match=r"stylekit\[ray\]"):
        run_batch(items, engine="ray")


# --- the Ray engine -----------------------------------------------------------------------------------------
# Kept cheap: one CPU (one worker process at a time, so torch and the VGG weights are loaded by two processes
# in all: the first worker and the one that replaces the killed worker), and a killer that watches only this
# session's worker processes instead of scanning every process of the machine many times a second.

@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace").strip()
    except OSError:
        return ""


def _children(parent: int) -> list[int]:
    pids = []
    for p in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(p, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            pids.append(int(p.split("/")[2]))
    return pids


def _session_worker(ray) -> tuple[int, int]:
    """(pid, parent pid) of the worker process a probe task runs on: with one CPU, the worker that runs
    the batch's tasks until one is killed; its parent is this session's raylet."""
    def probe():
        import os
        return os.getpid(), os.getppid()

    return ray.get(ray.remote(probe).remote())


def _kill_first_stylize_task(worker: int, raylet: int, killed: list, stop: threading.Event) -> None:
    """SIGKILL the first worker of this Ray session seen running a `_ray_stylize` task (Ray titles a busy
    worker ray::<task>): ``worker`` is watched every 10 ms, the raylet's other children (a worker Ray may have
    started instead) every half second."""
    watched, n = [worker], 0
    while not stop.is_set():
        if n % 50 == 49:
            watched = [worker, *(c for c in _children(raylet) if c != worker)]
        for pid in watched:
            if _title(pid) == "ray::_ray_stylize":
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        n += 1
        time.sleep(0.01)


def test_ray_engine_20_images_killed_worker_and_rerun(tmp_path, data, references, ray_session):
    root, inp, style = data
    out = tmp_path / "out"
    items = collect_items([inp], out, styles=[style], config=CFG)
    killed: list = []
    stop = threading.Event()
    worker, raylet = _session_worker(ray_session)
    killer = threading.Thread(target=_kill_first_stylize_task, args=(worker, raylet, killed, stop), daemon=True)
    killer.start()
    try:
        rows = run_batch(items, engine="ray", max_retries=3, results=out / "results.jsonl")
    finally:
        stop.set()
        killer.join()
    assert killed, "no running stylize task was found to kill"
    assert [r["status"] for r in rows] == ["done"] * N, [r["error"] for r in rows if r["error"]]
    assert_matches_single_runs(rows, references)
    assert ray_session.is_initialized()  # the session the caller started is left running

    rows2 = run_batch(items, engine="ray", results=out / "results.jsonl")
    assert [r["status"] for r in rows2] == ["skipped"] * N
    assert len(read_results(out / "results.jsonl")) == N


# --- sounds -------------------------------------------------------------------------------------------------

SR = 22050
AFAST = ["--steps", "3", "--griffin-lim-iters", "4", "--n-mels", "32", "--seed", "3"]


def _sine(seconds=0.5, freq=440.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _noise(seconds=0.5, seed=0):
    y = np.convolve(np.random.default_rng(seed).standard_normal(int(seconds * SR)), np.hanning(7), mode="same")
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    """Tiny clips at 22,050 Hz: a sine (WAV), noise (FLAC), a chord (OGG), an unreadable and a silent WAV."""
    import soundfile as sf
    d = tmp_path_factory.mktemp("sounds")
    (d / "in").mkdir()
    sf.write(str(d / "in" / "a_sine.wav"), _sine(), SR)
    sf.write(str(d / "in" / "b_noise.flac"), _noise(seed=1), SR)
    sf.write(str(d / "in" / "c_chord.ogg"), _sine(0.5, 330.0) + _sine(0.5, 415.0), SR)
    (d / "in" / "d_broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt nothing else")
    sf.write(str(d / "in" / "e_silent.wav"), np.zeros(SR // 2, np.float32), SR)
    sf.write(str(d / "style.wav"), _noise(0.6, seed=5) + _sine(0.6, 880.0), SR)
    sf.write(str(d / "style2.wav"), _sine(0.4, 220.0), SR)
    return d


def test_collect_decides_image_or_sound_per_file(tmp_path, data, sounds):
    import shutil
    root, inp, style = data
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(inp / "img00.png", mixed / "photo.png")
    shutil.copy(sounds / "in" / "a_sine.wav", mixed / "voice.wav")
    shutil.copy(sounds / "in" / "a_sine.wav", mixed / "take1")      # no suffix: a RIFF/WAVE header
    swav = sounds / "style.wav"

    photo, voice = collect_items([mixed], tmp_path / "o", styles=[swav], fmt="jpg")  # folders: by suffix
    assert (photo.medium, voice.medium) == ("image", "audio")
    assert voice.output == tmp_path / "o" / "voice.wav" and voice.error is None
    assert voice.config.steps == 50  # AudioStyleConfig's default
    # an image with an audio style (and the reverse) is an error row with a clear reason, never run
    assert photo.config is None and "photo.png is an image but its style" in photo.error
    assert "a sound" in photo.error
    [v] = collect_items([mixed / "voice.wav"], tmp_path / "o", styles=[style])
    assert v.config is None and "voice.wav is a sound but its style" in v.error and "an image" in v.error

    items = collect_items([str(mixed / "*")], tmp_path / "o", styles=[swav])      # globs: sniffed
    assert [(it.input.name, it.medium, it.output.name) for it in items] == [
        ("photo.png", "image", "photo.png"), ("take1", "audio", "take1.wav"), ("voice.wav", "audio", "voice.wav")]
    assert [it.input.name for it in collect_items([mixed], tmp_path / "o", styles=[style], media="image")] \
        == ["photo.png"]
    with pytest.raises(ConfigError, match="no audio files"):
        collect_items([inp], tmp_path / "o", styles=[swav], media="audio")

    man = tmp_path / "jobs.csv"
    man.write_text("input,style,output,media,steps,n_mels,style_blend,iterations\n"
                   f"{mixed}/voice.wav,{swav};{sounds}/style2.wav,,,7,48,\"1,3\",\n"
                   f"{mixed}/take1,{swav},t.wav,audio,,,,\n"
                   f"{mixed}/voice.wav,{swav},v2.wav,,,,,5\n"       # an image setting on a sound
                   f"{mixed}/photo.png,{style},,,9,,,\n"            # an audio setting on an image
                   f"{mixed}/voice.wav,{swav},v3.flac,,,,,\n"       # a sound is written as WAV
                   f"{mixed}/photo.png,{style},p2.png,,,,,4\n")
    a, b, c, d, e, f = collect_items([man], tmp_path / "o", config=AudioStyleConfig(seed=9))
    assert a.medium == "audio" and a.config.steps == 7 and a.config.spectrogram.n_mels == 48
    assert a.config.seed == 9 and a.config.style_blend == (1.0, 3.0) and len(a.styles) == 2
    assert b.medium == "audio" and b.output.name == "t.wav" and b.config.steps == 50
    assert c.config is None and "jobs.csv:4: iterations is an image setting" in c.error
    assert d.config is None and "jobs.csv:5: steps is an audio setting" in d.error
    assert e.config is None and "must be a .wav file" in e.error
    assert f.medium == "image" and f.config.iterations == 4


def read_wav(path):
    import soundfile as sf
    y, rate = sf.read(str(path), dtype="int16")
    return y, rate


def test_sounds_through_the_local_engine_match_single_runs_and_a_bad_file_is_isolated(tmp_path, sounds):
    out = tmp_path / "out"
    r = run_cli(sounds / "in", "-o", out, "--style", sounds / "style.wav", *AFAST, "--workers", "0", "-q")
    assert r.exit_code == 1, r.output  # the broken and the silent file failed; the others are written
    rows = read_results(out / "results.jsonl")
    assert [Path(x["output"]).name for x in rows] == ["a_sine.wav", "b_noise.wav", "c_chord.wav", "d_broken.wav",
                                                      "e_silent.wav"]
    assert [x["status"] for x in rows] == ["done", "done", "done", "error", "error"]
    assert "d_broken.wav: not a readable audio file" in rows[3]["error"]
    assert "e_silent.wav: is silent" in rows[4]["error"]
    assert not (out / "d_broken.wav").exists() and not (out / "e_silent.wav").exists()
    assert rows[0]["settings"]["steps"] == 3 and rows[0]["settings"]["spectrogram"]["n_mels"] == 32

    # identical samples to single `stylekit audio` runs with the same options and seed
    for name, src in (("a_sine", "a_sine.wav"), ("b_noise", "b_noise.flac"), ("c_chord", "c_chord.ogg")):
        single = tmp_path / f"{name}.single.wav"
        r = CliRunner().invoke(cli, ["audio", str(sounds / "in" / src), str(sounds / "style.wav"), "-o",
                                     str(single), *AFAST, "-q"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        batch_y, batch_rate = read_wav(out / f"{name}.wav")
        single_y, single_rate = read_wav(single)
        assert batch_rate == single_rate == SR and np.array_equal(batch_y, single_y), name

    # a rerun skips the finished sounds; other settings are refused, --overwrite recomputes
    mtime = os.stat(out / "a_sine.wav").st_mtime_ns
    r = run_cli(sounds / "in" / "a_sine.wav", "-o", out, "--style", sounds / "style.wav", *AFAST, "--workers", "0")
    assert r.exit_code == 0 and "0 done, 1 skipped, 0 failed" in r.output
    assert os.stat(out / "a_sine.wav").st_mtime_ns == mtime
    r = run_cli(sounds / "in" / "a_sine.wav", "-o", out, "--style", sounds / "style.wav", *AFAST, "--steps", "4",
                "--workers", "0", "-q")
    assert r.exit_code == 1 and "other settings" in read_results(out / "results.jsonl")[0]["error"]
    assert os.stat(out / "a_sine.wav").st_mtime_ns == mtime


def test_sounds_share_prepared_styles_and_blend(tmp_path, sounds, monkeypatch):
    """One style preparation per style set; several styles are blended with style_blend as in a single run."""
    from stylekit.audio import io as aio
    from stylekit.audio.job import AudioJob
    from stylekit.audio.pipeline import stylize_audio

    prepared = []
    real = AudioJob.style_targets.__func__
    monkeypatch.setattr(AudioJob, "style_targets",
                        classmethod(lambda cls, styles, config, names=None:
                                    prepared.append(list(styles)) or real(cls, styles, config, names)))
    cfg = AudioStyleConfig(steps=2, channels=16, seed=4, style_blend=(0.25, 0.75))
    styles = [sounds / "style.wav", sounds / "style2.wav"]
    items = collect_items([sounds / "in" / "a_sine.wav", sounds / "in" / "b_noise.flac"], tmp_path / "o",
                          styles=styles, config=cfg)
    rows = run_batch(items, workers=0)
    assert [r["status"] for r in rows] == ["done", "done"] and prepared == [[str(s) for s in styles]]
    single = stylize_audio(sounds / "in" / "b_noise.flac", styles, config=cfg)
    aio.write_audio(tmp_path / "single.wav", single.data, single.sample_rate)
    assert np.array_equal(read_wav(tmp_path / "o" / "b_noise.wav")[0], read_wav(tmp_path / "single.wav")[0])


def test_ray_task_functions_on_sounds(tmp_path, sounds):
    """The Ray engine's task bodies, called in this process: style targets prepared from bytes once, a sound
    stylized from bytes into WAV bytes identical to a single run, and a bad sound reported by its own name."""
    from stylekit.audio import io as aio
    from stylekit.audio.pipeline import stylize_audio
    from stylekit.batch import _ray

    cfg = AudioStyleConfig(steps=2, channels=16, seed=4)
    style = sounds / "style.wav"
    src = sounds / "in" / "c_chord.ogg"
    [item] = collect_items([src], tmp_path, styles=[style], config=cfg)
    error, targets = _ray._ray_targets(item.job(), [(str(style), style.read_bytes())], 1, False)
    assert error is None and targets is not None
    out = _ray._ray_stylize(item.job(), src.read_bytes(), targets, 1, False)
    assert out["status"] == "done", out
    (tmp_path / "c.wav").write_bytes(out["data"])
    assert aio.read_metadata(tmp_path / "c.wav")["content"] == src.name  # the driver's name, not the copy's
    single = stylize_audio(src, [style], config=cfg)
    aio.write_audio(tmp_path / "single.wav", single.data, single.sample_rate)
    assert np.array_equal(read_wav(tmp_path / "c.wav")[0], read_wav(tmp_path / "single.wav")[0])
    bad = sounds / "in" / "d_broken.wav"
    [bad_item] = collect_items([bad], tmp_path, styles=[style], config=cfg)
    out = _ray._ray_stylize(bad_item.job(), bad.read_bytes(), targets, 1, False)
    assert out["status"] == "error" and out["error"].startswith(f"{bad}: not a readable audio file")
    [bad_style] = collect_items([src], tmp_path / "b", styles=[bad], config=cfg)
    error, targets = _ray._ray_targets(bad_style.job(), [(str(bad), bad.read_bytes())], 1, False)
    assert targets is None and error.startswith(f"{bad}: not a readable audio file")


def test_cli_audio_option_errors_are_one_line(tmp_path, data, sounds):
    root, inp, style = data
    swav = sounds / "style.wav"
    assert "steps" in one_line_error(run_cli(sounds / "in", "-o", tmp_path / "o", "--style", swav, "--steps", "0",
                                             "--workers", "0", "-q"))
    # an image --init file means nothing to a sound: refused only when the batch has sounds
    assert "init" in one_line_error(run_cli(sounds / "in", "-o", tmp_path / "o", "--style", swav,
                                            "--init", style, "--workers", "0", "-q"))
    r = run_cli(inp / "img00.png", "-o", tmp_path / "o2", "--style", style, "--size", "32", "--iterations", "1",
                "--scales", "1", "--device", "cpu", "--init", style, "--workers", "0", "-q")
    assert r.exit_code == 0, r.output



def test_ray_connection_failure_is_one_line(tmp_path, data, monkeypatch):
    """A cluster that cannot be reached (ray.init raises after its own retries) ends in one line, exit 2."""
    ray = pytest.importorskip("ray")
    root, inp, style = data

    def unreachable(address=None, **kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}.\nMore detail")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    r = run_cli(inp / "img00.png", "-o", tmp_path / "o", "--style", style, *FAST, "--engine", "ray",
                "--address", "10.0.0.1:6379", "-q")
    assert "cannot connect to Ray at 10.0.0.1:6379: Failed to connect" in one_line_error(r)
