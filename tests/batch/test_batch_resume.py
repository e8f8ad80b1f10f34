"""`stylekit batch` interrupted (SIGTERM, as Ctrl-C) saves the items in progress, and a rerun resumes them.

The interrupt comes at a chosen optimisation step: a `sitecustomize` module on the command's PYTHONPATH wraps
`stylekit.optim._evaluate` in every process of the command (the driver and its spawned workers) and, at the
N-th evaluation of a process, sends SIGTERM to the driver and waits for the interrupt to come back (the driver
passes it on to the worker). So the interrupt always falls inside a run, without sleeps that race. The same
module can log every evaluation, which tells a resumed run (fewer evaluations) from one started again. On
Ray the hook reaches the task's worker through the session's runtime_env, and sends SIGINT to the driver,
which cancels the task with ray.cancel(force=False).
"""
from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import smooth_image, stripes_image

from _audio_data import SR, textureish, voiceish, write
from stylekit.batch import BatchInterrupted, collect_items, read_results, run_batch
from stylekit.cli import cli
from stylekit.image import load_image, read_metadata

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ["--size", "32", "--iterations", "8", "--scales", "1", "--seed", "5", "--device", "cpu",
           "--content-layers", "relu2_1", "--style-layers", "relu1_1:0.5,relu2_1:0.5",
           "--steps", "6", "--griffin-lim-iters", "4", "--float", "--threads", "1"]

HOOK = '''
import os


def _stylizes():  # not multiprocessing's resource tracker, which would import torch for nothing
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return b"resource_tracker" not in f.read()
    except OSError:
        return True


if (os.environ.get("STYLEKIT_TEST_INTERRUPT_AT") or os.environ.get("STYLEKIT_TEST_EVALUATIONS")) and _stylizes():
    import multiprocessing
    import signal
    import time

    import stylekit.optim as _optim

    _real, _calls = _optim._evaluate, [0]

    def _evaluate(criterion, x):
        _calls[0] += 1
        if os.environ.get("STYLEKIT_TEST_EVALUATIONS"):
            with open(os.environ["STYLEKIT_TEST_EVALUATIONS"], "a") as f:
                f.write(f"{os.getpid()}\\n")
        fired = os.environ.get("STYLEKIT_TEST_FIRED")  # a file that makes it fire once only
        if _calls[0] == int(os.environ.get("STYLEKIT_TEST_INTERRUPT_AT") or 0) and not (
                fired and os.path.exists(fired)):
            if fired:
                open(fired, "w").close()
            worker = multiprocessing.parent_process() is not None
            driver = os.environ.get("STYLEKIT_TEST_DRIVER_PID")  # a Ray task's
            if driver:
                os.kill(int(driver), signal.SIGINT)
            else:
                os.kill(os.getppid() if worker else os.getpid(), signal.SIGTERM)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the interrupt arrives here as KeyboardInterrupt
                time.sleep(0.005)
            raise RuntimeError("no interrupt came")
        return _real(criterion, x)

    _optim._evaluate = _evaluate
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A photo and a two-chunk sound with their styles; a manifest of each order; the hook's folder."""
    root = tmp_path_factory.mktemp("resume")
    smooth_image(48, 36, 3).save(root / "photo.png")
    stripes_image(40, 40).save(root / "style.jpg", quality=95)
    write(root / "voice.wav", voiceish(1.6))
    write(root / "texture.wav", textureish(0.8))
    # the sound in two chunks (1 s, overlapping by 0.25 s), so a resumed run reuses a finished chunk
    head = "input,style,chunk_seconds,overlap_seconds\n"
    photo, voice = "photo.png,style.jpg,,\n", "voice.wav,texture.wav,1.0,0.25\n"
    (root / "image_first.csv").write_text(head + photo + voice)
    (root / "audio_first.csv").write_text(head + voice + photo)
    (root / "hook").mkdir()
    (root / "hook" / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    return root


def batch_args(manifest: Path, out: Path, *extra, quiet: bool = True) -> list[str]:
    return ["batch", str(manifest), "-o", str(out), *OPTIONS, *(["-q"] if quiet else []), *extra]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def counted(*args) -> tuple:
    """`stylekit batch ARGS` in this process: the click result and the number of evaluations made here."""
    import stylekit.optim as optim

    real, calls = optim._evaluate, [0]

    def evaluate(criterion, x):
        calls[0] += 1
        return real(criterion, x)

    optim._evaluate = evaluate
    try:
        return invoke(*args), calls[0]
    finally:
        optim._evaluate = real


@pytest.fixture(scope="module")
def reference(data):
    """The outputs of an uninterrupted batch, and how many evaluations it made."""
    out = data / "reference"
    r, evaluations = counted(*batch_args(data / "image_first.csv", out, "--workers", "0"))
    assert r.exit_code == 0, r.output
    return out, evaluations


def batch_process(data: Path, manifest: str, out: Path, *, workers: int, at: int | None = None,
                  log: Path | None = None):
    """Run `stylekit batch` in a subprocess: SIGTERM comes at the ``at``-th evaluation of the process that
    stylizes (the driver for --workers 0, else the worker); ``log`` gets a line per evaluation."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STYLEKIT_TEST_INTERRUPT_AT": str(at or ""),
           "STYLEKIT_TEST_EVALUATIONS": str(log or ""),
           "PYTHONPATH": os.pathsep.join([str(data / "hook"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "stylekit",
                           *batch_args(data / manifest, out, "--workers", str(workers))],
                          env=env, capture_output=True, text=True, timeout=300)


def images_close(a: Path, b: Path) -> float:
    return float((load_image(a) - load_image(b)).abs().max())


def wav_metadata(path: Path) -> dict:
    from stylekit.audio.io import read_metadata as read_wav_metadata
    return read_wav_metadata(path)


# The shared style targets are computed without optimisation steps, so the 4th evaluation is the first item's
# 4th step (3 steps done): the photo's in-process, the sound's first chunk in a worker.
@pytest.mark.parametrize("workers,manifest,at,steps_done", [(0, "image_first.csv", 4, 3),
                                                            (1, "audio_first.csv", 4, 3)],
                         ids=["in-process-photo", "worker-sound"])
def test_sigterm_saves_the_item_in_progress_and_a_rerun_resumes_it(data, reference, tmp_path, workers, manifest,
                                                                   at, steps_done):
    reference, evaluations = reference
    out = tmp_path / "out"
    r = batch_process(data, manifest, out, workers=workers, at=at)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 130, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("interrupted: saved the best result so far of 1 input in progress"), lines[0]
    assert "1 not started" in lines[0] and "run the same command again" in lines[0]

    first, second = ("photo.png", "voice.wav") if manifest == "image_first.csv" else ("voice.wav", "photo.png")
    ckpt = out / f"{Path(first).stem}.ckpt.pt"
    # the best result so far, marked interrupted, and its checkpoint; nothing else, no temporary file
    assert sorted(p.name for p in out.iterdir()) == sorted([first, ckpt.name, "results.jsonl"])
    meta = read_metadata(out / first) if first.endswith(".png") else wav_metadata(out / first)
    assert meta["interrupted_at"] == steps_done and len(meta["inputs_sha256"]) == 64
    rows = read_results(out / "results.jsonl")
    assert [x["status"] for x in rows] == ["interrupted", "pending"]

    if workers:  # the evaluations are made by the worker process: count them through the hook
        log = tmp_path / "evaluations.txt"
        r = batch_process(data, manifest, out, workers=workers, log=log)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
        made = len(log.read_text().split())
    else:
        r, made = counted(*batch_args(data / manifest, out, "--workers", "0"))
        assert r.exit_code == 0 and not r.output.strip(), r.output
    assert [x["status"] for x in read_results(out / "results.jsonl")] == ["done", "done"]
    # resumed, not started again: the steps done before the interrupt are not made again
    assert made == evaluations - steps_done
    assert not ckpt.exists() and not list(out.glob("*.part*"))
    assert "interrupted_at" not in read_metadata(out / "photo.png")
    assert "interrupted_at" not in wav_metadata(out / "voice.wav")
    # the resumed item ends where an uninterrupted batch ends
    assert images_close(out / "photo.png", reference / "photo.png") <= 2 / 255
    np.testing.assert_allclose(sf.read(str(out / "voice.wav"))[0], sf.read(str(reference / "voice.wav"))[0],
                               atol=1e-4)
    # and a third run has nothing left to do
    r = invoke(*batch_args(data / manifest, out, "--workers", "0"))
    assert r.exit_code == 0 and [x["status"] for x in read_results(out / "results.jsonl")] == ["skipped"] * 2


def interrupt_at(monkeypatch, at: int) -> None:
    """Ctrl-C (KeyboardInterrupt) at the ``at``-th evaluation in this process."""
    import stylekit.optim as optim

    real, calls = optim._evaluate, [0]

    def evaluate(criterion, x):
        calls[0] += 1
        if calls[0] == at:
            raise KeyboardInterrupt
        return real(criterion, x)

    monkeypatch.setattr(optim, "_evaluate", evaluate)


def interrupt_in_process(monkeypatch, data: Path, out: Path) -> None:
    """`stylekit batch` of the photo and the sound, in this process, interrupted in the photo's 4th step."""
    interrupt_at(monkeypatch, 4)
    r = invoke(*batch_args(data / "image_first.csv", out, "--workers", "0"))
    monkeypatch.undo()
    assert r.exit_code == 130 and r.output.startswith("interrupted: saved the best result so far of 1 input")


def test_partial_output_without_its_checkpoint_is_made_again(data, reference, tmp_path, monkeypatch):
    reference, _ = reference
    out = tmp_path / "out"
    interrupt_in_process(monkeypatch, data, out)
    partial = (out / "photo.png").read_bytes()
    (out / "photo.ckpt.pt").unlink()
    r = invoke(*batch_args(data / "image_first.csv", out, "--workers", "0"))
    assert r.exit_code == 0, r.output
    assert [x["status"] for x in read_results(out / "results.jsonl")] == ["done", "done"]
    assert (out / "photo.png").read_bytes() != partial and "interrupted_at" not in read_metadata(out / "photo.png")
    # started again from the beginning, with the same seed: the uninterrupted result
    assert images_close(out / "photo.png", reference / "photo.png") <= 2 / 255


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("tamper", ["junk", "pickle", "foreign"])
def test_a_tampered_checkpoint_is_an_error_row_naming_it(data, tmp_path, monkeypatch, tamper):
    import torch

    out = tmp_path / "out"
    interrupt_in_process(monkeypatch, data, out)
    ckpt = out / "photo.ckpt.pt"
    if tamper == "junk":
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    elif tamper == "pickle":
        ckpt.write_bytes(pickle.dumps(_RunsCode(), protocol=2))
    else:
        torch.save({"format": "something-else", "state": {}}, ckpt)
    partial = (out / "photo.png").read_bytes()
    r = invoke(*batch_args(data / "image_first.csv", out, "--workers", "0", quiet=False))
    assert r.exit_code == 1, r.output  # the photo failed, the sound was made
    assert "Traceback" not in r.output and "pwned" not in r.output
    errors = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "photo.ckpt.pt: not a stylekit" in errors[0], r.output
    assert "delete it (or use --overwrite)" in errors[0]
    rows = read_results(out / "results.jsonl")
    assert [x["status"] for x in rows] == ["error", "done"] and rows[0]["error"] in errors[0]
    assert (out / "photo.png").read_bytes() == partial and ckpt.exists()  # nothing replaced


def test_api_raises_batch_interrupted_and_changed_content_is_made_again(data, tmp_path, monkeypatch):
    """The Python API raises BatchInterrupted with the rows. An interrupted output whose content file has
    changed since is made again from the start, not resumed from the stale checkpoint."""
    import shutil

    from stylekit.image import ImageStyleConfig
    work = tmp_path / "files"
    work.mkdir()
    shutil.copy(data / "photo.png", work / "photo.png")
    cfg = ImageStyleConfig(size=32, iterations=8, scales=1, seed=5, device="cpu",
                           content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 0.5, "relu2_1": 0.5})
    items = collect_items([work / "photo.png"], tmp_path / "out", styles=[data / "style.jpg"], config=cfg)
    interrupt_at(monkeypatch, 4)
    with pytest.raises(BatchInterrupted) as e:
        run_batch(items, workers=0)
    monkeypatch.undo()
    assert [x["status"] for x in e.value.rows] == ["interrupted"]

    smooth_image(48, 36, 4).save(work / "photo.png")  # the content changes
    [row] = run_batch(items, workers=0)
    assert row["status"] == "done" and not (tmp_path / "out" / "photo.ckpt.pt").exists()
    single = tmp_path / "single"
    [ref] = run_batch(collect_items([work / "photo.png"], single, styles=[data / "style.jpg"], config=cfg),
                      workers=0)
    assert ref["status"] == "done"
    assert images_close(tmp_path / "out" / "photo.png", single / "photo.png") <= 2 / 255


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test: a shell leaves SIGINT ignored in a background job (as CI may
    run the suite), and the Ray test interrupts this process with it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ray_engine_cancels_tasks_that_return_their_result_so_far_and_a_rerun_resumes(data, reference, tmp_path,
                                                                                     monkeypatch, python_sigint):
    """Ctrl-C in the driver: ray.cancel(force=False) raises KeyboardInterrupt in the running task, which
    returns its best result so far and state; the driver writes the output and the checkpoint. The rerun
    loads the checkpoint (on the driver) and the task continues from it."""
    ray = pytest.importorskip("ray")
    from stylekit.batch import engines
    from stylekit.image import ImageStyleConfig

    reference, _ = reference
    env = {"PYTHONPATH": os.pathsep.join([str(data / "hook"), str(ROOT)]), "OMP_NUM_THREADS": "1",
           "STYLEKIT_TEST_INTERRUPT_AT": "4", "STYLEKIT_TEST_FIRED": str(tmp_path / "fired"),
           "STYLEKIT_TEST_DRIVER_PID": str(os.getpid())}
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    try:
        cfg = ImageStyleConfig(size=32, iterations=8, scales=1, seed=5, device="cpu",
                               content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 0.5, "relu2_1": 0.5})
        out = tmp_path / "out"
        items = collect_items([data / "photo.png"], out, styles=[data / "style.jpg"], config=cfg)
        with pytest.raises(BatchInterrupted) as e:
            run_batch(items, engine="ray")
        assert [x["status"] for x in e.value.rows] == ["interrupted"]
        assert sorted(p.name for p in out.iterdir()) == ["photo.ckpt.pt", "photo.png"]
        assert read_metadata(out / "photo.png")["interrupted_at"] >= 1

        states = []
        real = engines._resume_state
        monkeypatch.setattr(engines, "_resume_state", lambda job: states.append(real(job)) or states[-1])
        [row] = run_batch(items, engine="ray")
        assert row["status"] == "done" and len(states) == 1 and states[0]["step"] >= 1
        assert sorted(p.name for p in out.iterdir()) == ["photo.png"]
        assert images_close(out / "photo.png", reference / "photo.png") <= 2 / 255
    finally:
        ray.shutdown()


def test_outputs_that_would_share_a_checkpoint_are_refused_before_any_work(data, tmp_path):
    from stylekit.errors import ConfigError

    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"input,style,output\n{data}/photo.png,{data}/style.jpg,a.png\n"
                        f"{data}/voice.wav,{data}/texture.wav,a.wav\n")
    with pytest.raises(ConfigError, match=r"share the checkpoint a\.ckpt\.pt"):
        collect_items([manifest], tmp_path / "out")
