"""The audio Job: the run protocol of :mod:`stylekit._job` for one sound (``stylekit audio``, batch).

What is particular to audio: the output is a WAV (16-bit, or float with ``--float``) whose comment carries the
settings (:func:`stylekit.audio.io.write_audio`); progress is counted in chunks of ``steps`` steps; an optional
PNG of the spectrograms is an extra output; and the config's ``device`` and ``threads`` only say where and how
fast a run goes, so a resumed run takes them from the command line and they are not part of the settings
digest.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._job import Job, jsonable, plot_path
from .._options import option
from ..errors import ConfigError, InputError
from .config import AudioStyleConfig

__all__ = ["AudioJob", "AudioOutput", "CHECKPOINT_FORMAT"]

#: /3: the config gained ``words``, ``full_band`` and ``vgg_bands``, whose defaults change the result, so a
#: checkpoint written before them cannot continue to the result its run would have given.
CHECKPOINT_FORMAT = "stylekit-audio-checkpoint/3"


@dataclass(frozen=True)
class AudioOutput:
    """What an audio job writes besides the samples' values.

    Examples
    --------
    >>> AudioOutput(float_output=True).float_output
    True
    """

    float_output: bool = option(False, is_flag=True, flag=("--float",), group="Input and output",
                                help="Write 32-bit float WAV instead of 16-bit.")
    plot: bool = option(False, is_flag=True, group="Input and output",
                        help="Also write OUTPUT_STEM.plot.png: the content, style and result spectrograms.")

    def __post_init__(self) -> None:
        if not isinstance(self.plot, bool):
            raise ConfigError(f"plot must be true or false, got {self.plot!r}")


class AudioJob(Job):
    """One stylized sound: the texture of ``styles`` on the words and rhythm of ``content``, under an
    :class:`AudioStyleConfig`. ``options`` is an :class:`AudioOutput` (sample format, spectrogram plot).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from stylekit.audio.io import write_audio
    >>> folder = Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> voice = write_audio(folder / "voice.wav", 0.3 * np.sin(np.arange(11025) * 0.06), 22050)
    >>> rain = write_audio(folder / "rain.wav", 0.1 * rng.standard_normal(11025), 22050)
    >>> job = AudioJob(voice, [rain], folder / "out.wav", AudioStyleConfig(steps=1))
    >>> job.check()
    >>> _ = job.run()
    >>> job.status()[0], (folder / "out.wav").exists()
    ('done', True)
    """

    medium = "audio"
    checkpoint_format = CHECKPOINT_FORMAT
    RUNTIME_FIELDS = ("device", "threads")

    def __init__(self, content, styles, output, config: AudioStyleConfig | None = None, *,
                 options: AudioOutput | None = None, **kw) -> None:
        super().__init__(content, styles, output, config or AudioStyleConfig(), **kw)
        self.options = options or AudioOutput()
        self._inputs = None

    # --- planning ----------------------------------------------------------------------------------------

    def check_output(self) -> None:
        if self.output.suffix.lower() != ".wav":
            raise ConfigError(f"{self.output}: the output must be a .wav file")
        blend = self.config.style_blend
        if blend is not None and len(blend) != len(self.styles):
            raise ConfigError(f"--style-blend has {len(blend)} weights for {len(self.styles)} styles")

    def extra_outputs(self) -> list[Path]:
        return [plot_path(self.output)] if self.options.plot else []

    def output_settings(self) -> dict:
        return {"float": True} if self.options.float_output else {}

    def check_state(self, state: dict) -> dict:
        from .pipeline import check_progress
        try:
            check_progress(state)
        except ConfigError:
            raise InputError(f"{self.resume}: damaged stylekit audio checkpoint (progress)") from None
        return state

    def steps_done(self, state: dict) -> int:
        done = int(state["chunk"]) * self.config.steps
        inner = state.get("state")
        return done + (int(inner["step"]) if isinstance(inner, dict) and "step" in inner else 0)

    def total_steps(self) -> int:
        from .transform import chunk_spans
        clip = self.load()[0].clip
        sr, n = clip.sample_rate, len(clip.samples)
        spans = chunk_spans(n, chunk=int(round(self.config.chunk_seconds * sr)),
                            overlap=int(round(self.config.overlap_seconds * sr)))
        return self.config.steps * len(spans)

    def describe_step(self, p) -> str:
        return f"chunk {p.scale}/{p.n_scales}"

    def describe_result(self, result) -> str:
        return f"{len(result.data) / result.sample_rate:.2f} s at {result.sample_rate} Hz"

    # --- running -------------------------------------------------------------------------------------------

    def load(self):
        """Read content and styles now (once), so that a bad file fails before any long work.

        Returns ``(AudioInput of the content, [AudioClip of each style])``, prepared with the job's config (a
        resumed job's config is the checkpoint's, so call this after :meth:`check`)."""
        if self._inputs is None:
            from .pipeline import read_input, run_config
            content = read_input(self.source, self.config, "content")
            sr = content.clip.sample_rate    # the styles at the content's working rate (full band)
            run = run_config(self.config, sr)
            self._inputs = content, [read_input(s, run, "style", rate=sr).clip for s in self.styles]
        return self._inputs

    @classmethod
    def style_targets(cls, styles: Sequence, config: AudioStyleConfig, names: Sequence[str] | None = None):
        from .pipeline import style_targets
        return style_targets(list(styles), config=config)

    def stylize(self, *, callback: Callable | None, resume: dict | None, targets: Any):
        from .pipeline import stylize_audio
        content, styles = self.load()
        return stylize_audio(content, targets if targets is not None else styles, config=self.config,
                             callback=callback, resume=resume)

    def metadata(self, seconds: float, **extra) -> dict:
        from .._device import resolve_device
        meta = super().metadata(seconds, **extra)
        meta["device"] = str(resolve_device(self.config.device))
        return meta

    def write(self, result, path: Path, metadata: dict, *, overwrite: bool) -> None:
        from .io import write_audio
        write_audio(path, result.data, result.sample_rate, subtype="float" if self.options.float_output else "pcm16",
                    metadata=jsonable(metadata), overwrite=overwrite)
        if self.options.plot and not result.interrupted:
            from .pipeline import plot_spectrograms
            plot_spectrograms(result, plot_path(self.output), overwrite=True)

    @classmethod
    def read_metadata(cls, path: Path) -> dict:
        from .io import read_metadata
        return read_metadata(path)
