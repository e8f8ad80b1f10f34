"""``stylekit spectral``: generate notes, train/evaluate/compare the five models, encode/decode/morph sounds."""
from __future__ import annotations

from pathlib import Path

import click

from .._command import command, examples
from .._io import check_output_path
from .._options import build, click_options
from ..errors import ConfigError, InputError
from .config import (MODEL_NAMES, NoteFilter, SpectralSTFTConfig, SynthConfig, TrainConfig, format_int_list,
                     parse_int_list)

_T = TrainConfig()
_S = SpectralSTFTConfig()
_SY = SynthConfig()


def _tqdm(**kw):
    # disable=None: no bar when stderr is not a terminal, so a log holds only the result or the one error line;
    # on a terminal leave=False erases the bar before an error line is printed.
    from tqdm import tqdm
    return tqdm(leave=False, dynamic_ncols=True, disable=None, **kw)


def _threads(n: int | None) -> None:
    if n is not None:
        from .._validate import check_threads
        check_threads(n, "--threads")       # 100000 threads crash torch; -1 is meaningless
        import torch
        torch.set_num_threads(n)


#: Suffixes of the files matplotlib writes for ``compare --plot`` (the format follows the suffix).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _dataset_files(data_dir, split: str | None) -> list[Path]:
    """Every file a run reads from a data set's split: its examples.json and its notes' WAV files."""
    from .nsynth import read_split, resolve_split
    return [resolve_split(data_dir, split) / "examples.json",
            *(n.path for n in read_split(data_dir, split, check_files=False))]


def _selected(data_dir, split: str | None, flt: NoteFilter) -> int:
    """How many notes of the split the selection keeps (for the progress bars)."""
    from .nsynth import read_split, select_notes
    return len(select_notes(read_split(data_dir, split, check_files=False), flt))


def _model_file(model_path, default: str = "dae") -> Path:
    from .resynth import DEFAULT_CHECKPOINT, VAE_CHECKPOINT
    if model_path is not None:
        return Path(model_path)
    return VAE_CHECKPOINT if default == "vae" else DEFAULT_CHECKPOINT


def _plan_outputs(outputs: list, *, inputs, overwrite: bool, data: tuple | None = None) -> list[Path]:
    """Before any work: each output (``[(path or None, allowed suffixes or None)]``) has a suffix its writer can
    write, may be written (see :func:`stylekit._io.check_output_path`), and is neither another output nor one
    of ``inputs`` or, with ``data=(data_dir, split)``, of the files of that data set (by any name: a link).
    Returns the data set's files (``[]`` without ``data``)."""
    done: list[Path] = []
    for out, suffixes in outputs:
        if out is None:
            continue
        out = Path(out)
        if suffixes is not None and out.suffix.lower() not in suffixes:
            raise ConfigError(f"{out}: the output must be a {' or '.join(suffixes)} file")
        check_output_path(out, overwrite=overwrite, inputs=[*inputs, *done])
        done.append(out)
    files = _dataset_files(*data) if data is not None else []
    for out in done:
        check_output_path(out, overwrite=True, inputs=files)
    return files


@command("spectral", group=True, examples=examples(
    "stylekit spectral synth notes/ --programs 0,24 --pitches 48-72",
    "stylekit spectral train notes/ --model dae --latent 16 -o dae16.pt",
    "stylekit spectral eval dae16.pt notes/ --json dae16.json",
    "stylekit spectral morph a.wav b.wav -o ab.wav --ramp",
    "stylekit spectral COMMAND --help"))
def spectral() -> None:
    """Spectral autoencoders for musical notes (Roche et al., SMC 2019)."""


@spectral.command("synth", epilog=examples("stylekit spectral synth notes/",
                                           "stylekit spectral synth notes/ --programs 0,24,40-48 --pitches 36-84:2"))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--programs", default=format_int_list(_SY.programs), show_default=True,
              help="GM programs 0-119, e.g. 0,24,40-48")
@click.option("--pitches", default="21-108:3", show_default=True, help="MIDI pitches, e.g. 21-108, 36-84:2, 60,64")
@click.option("--velocities", default=",".join(map(str, _SY.velocities)), show_default=True,
              help="MIDI velocities, e.g. 64,127")
@click.option("--soundfont", "soundfonts", multiple=True, type=click.Path(dir_okay=False),
              help="sf2 file (repeatable, 1-3); default: FluidR3_GM then TimGM6mb")
@click.option("--test-fraction", type=float, default=_SY.test_fraction, show_default=True,
              help="share of the instruments held out for the test split")
@click.option("--valid-fraction", type=float, default=_SY.valid_fraction, show_default=True,
              help="share of the instruments held out for the validation split")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the instrument split")
@click.option("--jobs", "-j", type=int, default=2, show_default=True, help="parallel FluidSynth processes")
@click.option("--overwrite", is_flag=True, help="replace an existing data set in OUT_DIR")
def synth_cmd(out_dir, programs, pitches, velocities, soundfonts, test_fraction, valid_fraction, seed, jobs,
              overwrite):
    """Render single notes into an NSynth-format data set in OUT_DIR."""
    from .synth import synthesize
    cfg = SynthConfig(programs=parse_int_list(programs, lo=0, hi=119, name="--programs"),
                      pitches=parse_int_list(pitches, lo=0, hi=127, name="--pitches"),
                      velocities=parse_int_list(velocities, lo=1, hi=127, name="--velocities"),
                      soundfonts=tuple(soundfonts) or _SY.soundfonts, test_fraction=test_fraction,
                      valid_fraction=valid_fraction, seed=seed)
    total = len(cfg.programs) * len(cfg.soundfonts) * len(cfg.pitches) * len(cfg.velocities)
    with _tqdm(total=total, desc="rendering", unit="note") as bar:
        rep = synthesize(out_dir, cfg, jobs=jobs, overwrite=overwrite, progress=bar.update)
    for split in rep.notes:
        click.echo(f"{split}: {rep.notes[split]} notes, {len(rep.instruments[split])} instruments")
    if rep.silent:
        click.echo(f"dropped {len(rep.silent)} silent notes")


@spectral.command("train", epilog=examples("stylekit spectral train notes/ --model dae --latent 16 -o dae16.pt",
                                           "stylekit spectral train notes/ --model vae --beta 0.1 -o vae.pt --resume"))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", "model_name", type=click.Choice(list(MODEL_NAMES)), default=_T.model, show_default=True,
              help="model family")
@click.option("--latent", type=int, default=_T.latent, show_default=True, help="latent size per frame")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="checkpoint MODEL.pt")
@click.option("--epochs", type=int, default=_T.epochs, show_default=True, help="passes over the training set")
@click.option("--batch-frames", type=int, default=_T.batch_frames, show_default=True,
              help="spectral frames per optimiser step")
@click.option("--lr", type=float, default=_T.lr, show_default=True, help="Adam learning rate")
@click.option("--seq-len", type=int, default=_T.seq_len, show_default=True,
              help="frames per training segment (the LSTM-AE's sequence length)")
@click.option("--segments-per-note", type=int, default=_T.segments_per_note, show_default=True,
              help="random seq-len segments kept per note (0 = all frames)")
@click.option("--beta", type=float, default=_T.beta, show_default=True, help="VAE KL weight")
@click.option("--seed", type=int, default=_T.seed, show_default=True,
              help="seed of the weights, segments, shuffling and VAE noise")
@click.option("--n-fft", type=int, default=_S.n_fft, show_default=True, help="FFT size of the spectra")
@click.option("--hop", type=int, default=_S.hop_length, show_default=True, help="STFT hop (samples)")
@click.option("--top-db", type=float, default=_S.top_db, show_default=True,
              help="dynamic range kept below 0 dB (dB)")
@click.option("--threads", type=int, default=None, help="torch CPU threads")
@click.option("--resume", is_flag=True, help="continue an interrupted run from MODEL.pt.partial")
@click.option("--overwrite", is_flag=True, help="replace an existing MODEL.pt")
@click.option("--patience", type=int, default=_T.patience, show_default=True,
              help="early stopping: epochs without a lower valid-split loss before stopping (0 = off)")
@click.option("--max-frames", type=int, default=_T.max_frames, show_default=True,
              help="most training frames held in memory (reservoir-sampled while the notes stream)")
@click_options(NoteFilter)
def train_cmd(data_dir, model_name, latent, output, epochs, batch_frames, lr, seq_len, segments_per_note, beta,
              seed, n_fft, hop, top_db, threads, resume, overwrite, patience, max_frames, **selection):
    """Train a model on DATA_DIR's train split and save it to MODEL.pt.

    After every epoch a resume point MODEL.pt.partial is written atomically. Ctrl-C (or SIGTERM) stops with
    exit code 130 and keeps it; --resume continues from it, with the same options, to the weights an
    uninterrupted run gives.
    """
    import signal
    import sys

    from .._command import sigterm_as_interrupt
    from .train import train_to_file
    _threads(threads)
    partial = Path(output).with_name(Path(output).name + ".partial")
    check_output_path(output, overwrite=overwrite)
    if resume and not partial.is_file():
        raise ConfigError(f"{partial}: no resume point to continue (it is written after each finished epoch)")
    cfg = TrainConfig(model=model_name, latent=latent, epochs=epochs, batch_frames=batch_frames, lr=lr,
                      seed=seed, seq_len=seq_len, segments_per_note=segments_per_note, beta=beta,
                      patience=patience, max_frames=max_frames)
    stft = SpectralSTFTConfig(n_fft=n_fft, hop_length=hop, top_db=top_db)
    flt = build(NoteFilter, selection)
    _plan_outputs([(output, None), (partial, None)], inputs=[], overwrite=True, data=(data_dir, "train"))
    n_notes = _selected(data_dir, "train", flt)
    load_bar = _tqdm(total=n_notes, desc="reading", unit="note")
    bar = None

    def on_step(p):
        nonlocal bar
        if bar is None:
            load_bar.close()
            bar = _tqdm(total=p.steps_per_epoch * cfg.epochs, desc=f"{model_name} L={latent}", unit="step",
                        initial=(p.epoch - 1) * p.steps_per_epoch)
        bar.update(1)
        bar.set_postfix(epoch=p.epoch, loss=f"{p.loss:.4f}")

    previous = sigterm_as_interrupt()
    try:
        train_to_file(data_dir, output, cfg, stft=stft, resume=resume, overwrite=overwrite, note_filter=flt,
                      on_load=load_bar.update, on_step=on_step)
    except KeyboardInterrupt:
        load_bar.close()
        if bar is not None:
            bar.close()
        if partial.is_file():
            click.echo(f"interrupted: the last finished epoch is saved in {partial}; continue with the same "
                       "options and --resume", err=True)
        else:
            click.echo("interrupted before the first epoch finished; nothing was saved", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        load_bar.close()
        if bar is not None:
            bar.close()
    click.echo(f"wrote {output}")


def _print_result(r) -> None:
    click.echo(f"{r.model} L={r.latent}: RMSE {r.rmse_db:.3f} dB over {r.n_notes} notes")
    if r.psm is not None:
        click.echo(f"PEMO-Q-like PSM {r.psm:.4f}, PSM_t {r.psm_t:.4f} (1 = identical, mean of {r.n_perceptual} "
                   "notes)")
    if r.moslqo is not None:
        click.echo(f"ViSQOL MOS-LQO {r.moslqo:.3f} (1-5, mean of {r.n_perceptual} notes)")


@spectral.command("eval", epilog=examples("stylekit spectral eval dae16.pt notes/",
                                          "stylekit spectral eval dae16.pt notes/ --perceptual-notes 0 --json r.json"))
@click.argument("model_path", type=click.Path(dir_okay=False))
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default=None,
              help="which split of DATA_DIR to score when DATA_DIR is the data set's root (a split folder such as "
                   "nsynth-test/ is scored as it is) [default: test]")
@click.option("--perceptual-notes", type=int, default=16, show_default=True,
              help="notes given the perceptual score (0 = skip it)")
@click.option("--perceptual", type=click.Choice(["pemo", "visqol"]), default="pemo", show_default=True,
              help="perceptual score: the PEMO-Q-like PSM, or ViSQOL (pip install visqol-python)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write the result as JSON")
@click.option("--overwrite", is_flag=True, help="replace an existing --json file")
@click_options(NoteFilter)
def eval_cmd(model_path, data_dir, split, perceptual_notes, perceptual, json_out, overwrite, **selection):
    """Report RMSE (dB) and a perceptual score of MODEL.pt on DATA_DIR's test split (DATA_DIR is the data
    set's root or one split folder)."""
    from .evaluate import check_finite, evaluate, save_result
    from .models import load_model
    flt = build(NoteFilter, selection)
    _plan_outputs([(json_out, None)], inputs=[model_path], overwrite=overwrite, data=(data_dir, split))
    model, stft, meta = load_model(model_path)
    n = _selected(data_dir, split, flt)
    with _tqdm(total=n + min(max(perceptual_notes, 0), n), desc="evaluating", unit="note") as bar:
        r = evaluate(model, stft, data_dir, split=split, perceptual_notes=perceptual_notes,
                     checkpoint=str(model_path), progress=bar.update, note_filter=flt, perceptual=perceptual,
                     seed=(meta.get("train") or {}).get("seed"))
    check_finite(r, model_path)
    if json_out:    # written before the result is printed: a failed write is the only line
        save_result(json_out, r, overwrite=overwrite)
    _print_result(r)


@spectral.command("compare", epilog=examples("stylekit spectral compare *.json --table table.md --plot plot.png",
                                             "stylekit spectral compare a.pt b.pt --data notes/"))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="data set to evaluate .pt checkpoints on (not needed for .json results)")
@click.option("--perceptual-notes", type=int, default=16, show_default=True,
              help="notes given the perceptual score (PSM) per checkpoint (0 = skip it)")
@click.option("--table", "table_out", type=click.Path(dir_okay=False), help="write the Markdown table here")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), help="write the error-vs-latent plot here")
@click.option("--overwrite", is_flag=True, help="replace existing --table and --plot files")
def compare_cmd(inputs, data_dir, perceptual_notes, table_out, plot_out, overwrite):
    """Paper-style table and plot from checkpoints (.pt, evaluated on --data) or `eval --json` results; several
    results of one model and latent size (seeds) are shown as mean ± sd, and a win needs 2 sd."""
    from .evaluate import check_finite, comparison_plot, comparison_table, evaluate, load_result
    from .models import load_model
    _plan_outputs([(table_out, None), (plot_out, PLOT_SUFFIXES)], inputs=inputs, overwrite=overwrite,
                  data=(data_dir, "test") if data_dir is not None else None)
    results, cache = [], {}
    for p in inputs:
        if Path(p).suffix == ".json":
            results.append(load_result(p))
            continue
        if data_dir is None:
            raise ConfigError(f"{p}: evaluating a checkpoint needs --data DATA_DIR")
        model, stft, meta = load_model(p)
        results.append(check_finite(evaluate(model, stft, data_dir, perceptual_notes=perceptual_notes,
                                             checkpoint=p, cache=cache,
                                             seed=(meta.get("train") or {}).get("seed")), p))
    table = comparison_table(results)
    if table_out:   # the files first: a failed write (a full disk) is then the only line
        from .._io import atomic_write
        atomic_write(table_out, lambda t: t.write_text(table), overwrite=overwrite)
    if plot_out:
        comparison_plot(results, plot_out, overwrite=overwrite)
    click.echo(table, nl=False)


_phase_opt = click.option("--phase", type=click.Choice(["griffinlim", "pghi"]), default="griffinlim",
                          show_default=True, help="phase reconstruction: Griffin-Lim, or PGHI refined by Griffin-Lim")
_vae_opt = click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                        help="VAE checkpoint (default: the shipped VAE, latent 16)")
_model_opt = click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
                          help="checkpoint (default: the shipped DAE, latent 16)")


@spectral.command("encode", epilog=examples("stylekit spectral encode note.wav -o note.pt",
                                            "stylekit spectral encode note.wav -o note.pt --model dae16.pt"))
@click.argument("wav", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="latents file (.pt)")
@_model_opt
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default=None,
              help="when WAV is a data set's root: the split to encode [default: test]")
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@click_options(NoteFilter)
def encode_cmd(wav, output, model_path, split, overwrite, **selection):
    """Encode a note (WAV at the model's rate) into a latent sequence, or the selected notes of a data set
    (its root or a split folder) into one mean latent vector per note with its pitch, velocity and family."""
    from .resynth import encode_audio, load, read_note, save_latents
    flt = build(NoteFilter, selection)
    if Path(wav).is_dir():
        from .resynth import encode_notes
        _plan_outputs([(output, None)], inputs=[_model_file(model_path)], overwrite=overwrite, data=(wav, split))
        model, stft, meta = load(model_path)
        with _tqdm(total=_selected(wav, split, flt), desc="encoding", unit="note") as bar:
            n = encode_notes(model, stft, wav, output, split=split, note_filter=flt, meta=meta,
                             overwrite=overwrite, progress=bar.update)
        click.echo(f"wrote {output}: {n} notes x {model.latent} latents")
        return
    if not flt.is_all:
        raise ConfigError("--families/--sources/--pitches/--velocities/--max-notes select notes of a data set; "
                          f"{wav} is one file")
    _plan_outputs([(output, None)], inputs=[wav, _model_file(model_path)], overwrite=overwrite)
    model, stft, meta = load(model_path)
    y = read_note(wav, stft)
    z = encode_audio(model, stft, y)
    save_latents(output, z, meta=meta, length=len(y), overwrite=overwrite)
    click.echo(f"wrote {output}: {z.shape[0]} frames x {z.shape[1]} latents")


@spectral.command("decode", epilog=examples("stylekit spectral decode note.pt -o note.wav",
                                            "stylekit spectral decode note.pt -o note.wav --model dae16.pt --seed 1"))
@click.argument("latents", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV file")
@_model_opt
@click.option("--seed", type=int, default=0, show_default=True, help="Griffin-Lim initial phase seed")
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@_phase_opt
def decode_cmd(latents, output, model_path, seed, overwrite, phase):
    """Decode a latent sequence back to sound (Griffin-Lim)."""
    from .resynth import decode_latents, load, load_latents, write_wav
    _plan_outputs([(output, (".wav",))], inputs=[latents, _model_file(model_path)], overwrite=overwrite)
    model, stft, meta = load(model_path)
    z, length = load_latents(latents, meta=meta)
    try:
        y = decode_latents(model, stft, z, length=length, seed=seed, method=phase)
    except ConfigError as e:
        raise InputError(f"{latents}: {e}") from None
    write_wav(output, y, stft.sample_rate, overwrite=overwrite)
    click.echo(f"wrote {output}")


@spectral.command("morph", epilog=examples("stylekit spectral morph a.wav b.wav -o ab.wav --alpha 0.3",
                                           "stylekit spectral morph a.wav b.wav -o ab.wav --ramp"))
@click.argument("wav_a", type=click.Path(dir_okay=False))
@click.argument("wav_b", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="WAV file")
@_model_opt
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="weight of B in the latent mix")
@click.option("--ramp", is_flag=True, help="glide from A to B over the note instead of a fixed --alpha")
@click.option("--seed", type=int, default=0, show_default=True, help="Griffin-Lim initial phase seed")
@click.option("--overwrite", is_flag=True, help="replace an existing output file")
@_phase_opt
def morph_cmd(wav_a, wav_b, output, model_path, alpha, ramp, seed, overwrite, phase):
    """Interpolate two notes in latent space and resynthesise the mix (Griffin-Lim)."""
    from .resynth import decode_latents, encode_audio, load, morph_latents, read_note, write_wav
    _plan_outputs([(output, (".wav",))], inputs=[wav_a, wav_b, _model_file(model_path)], overwrite=overwrite)
    model, stft, _ = load(model_path)
    ya, yb = read_note(wav_a, stft), read_note(wav_b, stft)
    z = morph_latents(encode_audio(model, stft, ya), encode_audio(model, stft, yb),
                      alpha=None if ramp else alpha)
    n = min(len(ya), len(yb))
    write_wav(output, decode_latents(model, stft, z, length=n, seed=seed, method=phase), stft.sample_rate,
              overwrite=overwrite)
    click.echo(f"wrote {output}")


@spectral.command("sample", epilog=examples("stylekit spectral sample -o s.wav --seed 3",
                                            "stylekit spectral sample -o s.wav --figure s.png --count 4"))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="WAV file (with --count N: the N samples one after the other)")
@_vae_opt
@click.option("--count", type=click.IntRange(1, 64), default=1, show_default=True, help="samples to draw")
@click.option("--seconds", type=click.FloatRange(0.1, 60), default=2.0, show_default=True,
              help="length of each sample")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="standard deviation of the prior draw (1 = the prior)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the draws and the phase")
@click.option("--figure", "figure", type=click.Path(dir_okay=False), help="also write their spectrograms here")
@click.option("--overwrite", is_flag=True, help="replace existing output files")
@_phase_opt
def sample_cmd(output, model_path, count, seconds, temperature, seed, figure, overwrite, phase):
    """Draw notes from a VAE's prior: z ~ N(0, I), held over the note, decoded and resynthesised."""
    import numpy as np

    from .resynth import decode_latents, load, sample_prior, spectrogram_figure, write_wav
    _plan_outputs([(output, (".wav",)), (figure, PLOT_SUFFIXES)], inputs=[_model_file(model_path, "vae")],
                  overwrite=overwrite)
    model, stft, _ = load(model_path, default="vae")
    length = int(seconds * stft.sample_rate)
    n_frames = 1 + length // stft.hop_length
    zs = [sample_prior(model, n_frames=n_frames, seed=seed + i, temperature=temperature) for i in range(count)]
    ys = [decode_latents(model, stft, z, length=length, seed=seed, method=phase) for z in zs]
    if figure:
        import torch
        with torch.no_grad():
            panels = [np.clip(model.decode(z).numpy(), 0, 1) for z in zs]
        spectrogram_figure(panels, [f"seed {seed + i}" for i in range(count)], stft, figure, overwrite=overwrite)
    write_wav(output, np.concatenate(ys), stft.sample_rate, overwrite=overwrite)
    click.echo(f"wrote {output}" + (f" and {figure}" if figure else ""))


@spectral.command("sweep", epilog=examples("stylekit spectral sweep note.wav -o sweep.wav --dim 0",
                                           "stylekit spectral sweep note.wav -o s.wav --dim 3 --values -2,0,2"))
@click.argument("wav", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="WAV file: the note decoded at each value, one after the other")
@_vae_opt
@click.option("--dim", type=int, required=True, help="latent dimension to move (0-based)")
@click.option("--values", default="-2,-1,0,1,2", show_default=True,
              help="offsets added to that dimension (latent units: prior standard deviations for a VAE)")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the phase reconstruction")
@click.option("--figure", "figure", type=click.Path(dir_okay=False), help="also write their spectrograms here")
@click.option("--overwrite", is_flag=True, help="replace existing output files")
@_phase_opt
def sweep_cmd(wav, output, model_path, dim, values, seed, figure, overwrite, phase):
    """Encode a note, move one latent dimension through --values, and decode each step."""
    import numpy as np

    from .._options import parse_floats
    from .resynth import decode_latents, encode_audio, load, read_note, spectrogram_figure, sweep_latents, write_wav
    offsets = parse_floats(values, "--values")
    if not offsets or len(offsets) > 64 or not all(np.isfinite(offsets)):
        raise ConfigError(f"--values: give 1 to 64 finite numbers, got {values!r}")
    _plan_outputs([(output, (".wav",)), (figure, PLOT_SUFFIXES)], inputs=[wav, _model_file(model_path, "vae")],
                  overwrite=overwrite)
    model, stft, _ = load(model_path, default="vae")
    y = read_note(wav, stft)
    steps = sweep_latents(encode_audio(model, stft, y), dim=dim, values=offsets)
    ys = [decode_latents(model, stft, z, length=len(y), seed=seed, method=phase) for z in steps]
    if figure:
        import torch
        with torch.no_grad():
            panels = [np.clip(model.decode(z).numpy(), 0, 1) for z in steps]
        spectrogram_figure(panels, [f"z[{dim}] {v:+g}" for v in offsets], stft, figure, overwrite=overwrite)
    write_wav(output, np.concatenate(ys), stft.sample_rate, overwrite=overwrite)
    click.echo(f"wrote {output}" + (f" and {figure}" if figure else ""))


#: The headings of the subcommands' ``--help``, by option (the note selection has its own, from its fields).
_HEADINGS = {
    "Input and output": ("output", "model_path", "data_dir", "split", "json_out", "table_out", "plot_out", "figure",
                         "overwrite"),
    "Model": ("model_name", "latent", "beta"),
    "Training": ("epochs", "batch_frames", "lr", "seq_len", "segments_per_note", "patience", "max_frames"),
    "Spectrogram and sound": ("n_fft", "hop", "top_db", "phase", "seconds", "temperature", "count", "dim",
                              "values", "alpha", "ramp"),
    "Data set": ("programs", "pitches", "velocities", "soundfonts", "test_fraction", "valid_fraction"),
    "Evaluation": ("perceptual", "perceptual_notes"),
    "Quality and speed": ("seed", "threads", "jobs"),
    "Resume": ("resume",),
}


def _group_options(group: click.Group) -> None:
    """Put each subcommand's options under the headings of :data:`_HEADINGS` (rich-click panels), in that
    order; an option not listed stays under "Options"."""
    from rich_click.rich_panel import RichOptionPanel
    heading = {name: h for h, names in _HEADINGS.items() for name in names}
    for cmd in group.commands.values():
        panels: dict[str, list[str]] = {}
        for p in cmd.params:
            if isinstance(p, click.Option) and getattr(p, "panel", None) is None and p.name in heading:
                panels.setdefault(heading[p.name], []).append(p.name)
        for h in _HEADINGS:
            if h in panels:
                cmd.panels.append(RichOptionPanel(name=h, options=panels[h]))


_group_options(spectral)
