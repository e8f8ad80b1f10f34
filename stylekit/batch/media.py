"""The media a batch can stylize, and the one place that knows them: :data:`MEDIA`.

Each :class:`Medium` names its :class:`~stylekit._job.Job` class, its config class and its output options
(imported lazily: nothing here loads torch), the files a folder input picks up, and how its outputs are named.
Everything else in :mod:`stylekit.batch` asks this registry and then only calls :class:`~stylekit._job.Job`
methods, so a new medium (video) is one more entry here.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Medium", "MEDIA", "media_of", "medium_of_config", "pin_to_device"]


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Medium:
    """One medium of a batch.

    Attributes
    ----------
    name : ``"image"``, ``"audio"``: what a manifest's ``media`` column and ``--media`` say.
    noun : the medium's thing with its article, for messages (``"an image"``, ``"a sound"``).
    job_ref, config_ref, options_ref : ``"module:Class"`` of its Job, config and output options.
    suffixes : the files of this medium that a folder input picks up.
    output_suffix : the suffix of its outputs; None: the batch's image ``--format``.
    batch_outputs : the output options that make sense for a whole batch (options_ref's fields).
    magic : tells the medium from a file's first 12 bytes, for files whose suffix says nothing.
    style_medium : the medium of its styles, when not its own (a video takes image styles).

    Examples
    --------
    >>> MEDIA["image"].noun, ".wav" in MEDIA["audio"].suffixes
    ('an image', True)
    """

    name: str
    noun: str
    job_ref: str
    config_ref: str
    options_ref: str
    suffixes: tuple[str, ...]
    output_suffix: str | None = None
    batch_outputs: tuple[str, ...] = ()
    magic: Callable[[bytes], bool] | None = None
    style_medium: str | None = None

    @property
    def job(self):
        """The medium's :class:`~stylekit._job.Job` class."""
        return _load(self.job_ref)

    @property
    def config(self):
        """The medium's config class (plain Python)."""
        return _load(self.config_ref)

    @property
    def options(self):
        """The medium's output options class (what a job writes besides the result)."""
        return _load(self.options_ref)

    def suffix(self, fmt: str) -> str:
        """The suffix of an output of this medium, given the batch's image format ``fmt``."""
        return self.output_suffix or f".{fmt}"


def _is_sound(head: bytes) -> bool:
    """RIFF/WAVE, FLAC, Ogg and MP3 (ID3 tag or frame sync) headers."""
    return ((head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head[:4] in (b"fLaC", b"OggS")
            or head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0))


#: The media of a batch, by name; the first is what a file of no known kind is taken for (its loader then
#: says what is wrong with it).
MEDIA: dict[str, Medium] = {
    "image": Medium("image", "an image", "stylekit.image.job:ImageJob", "stylekit.image.config:ImageStyleConfig",
                    "stylekit.image.job:ImageOutput",
                    suffixes=(".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif")),
    "audio": Medium("audio", "a sound", "stylekit.audio.job:AudioJob", "stylekit.audio.config:AudioStyleConfig",
                    "stylekit.audio.job:AudioOutput", suffixes=(".wav", ".flac", ".ogg", ".mp3"),
                    output_suffix=".wav", batch_outputs=("float_output",), magic=_is_sound),
    # a GIF in a folder stays an image; stylekit video takes GIFs one at a time
    "video": Medium("video", "a video", "stylekit.video.job:VideoJob", "stylekit.video.config:VideoStyleConfig",
                    "stylekit.video.job:VideoOutput", suffixes=(".mp4", ".mov", ".webm", ".mkv"),
                    output_suffix=".mp4", batch_outputs=("crf",), style_medium="image"),
}


def media_of(path: str | os.PathLike) -> str:
    """The medium of a file: by suffix, else by its first bytes; a missing or unreadable file, or one of no
    known kind, counts as the first medium (an image).

    Examples
    --------
    >>> media_of("photo.jpg"), media_of("voice.wav")
    ('image', 'audio')
    """
    suffix = Path(path).suffix.lower()
    for m in MEDIA.values():
        if suffix in m.suffixes:
            return m.name
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    return next((m.name for m in MEDIA.values() if m.magic is not None and m.magic(head)), next(iter(MEDIA)))


def medium_of_config(config: Any) -> str:
    """The medium whose config (or output options) ``config`` is; ConfigError for anything else.

    Examples
    --------
    >>> from stylekit.audio.config import AudioStyleConfig
    >>> from stylekit.image.config import ImageStyleConfig
    >>> medium_of_config(ImageStyleConfig()), medium_of_config(AudioStyleConfig())
    ('image', 'audio')
    """
    from ..errors import ConfigError
    for m in MEDIA.values():
        if type(config).__name__ in (m.config_ref.rpartition(":")[2], m.options_ref.rpartition(":")[2]) and \
                isinstance(config, (m.config, m.options)):
            return m.name
    raise ConfigError(f"not a config of any medium: {type(config).__name__}")


def pin_to_device(config: Any, gpus: int) -> Any:
    """``config`` with the settings left to the device (an image's ``size=None``) fixed for the whole batch,
    as they would resolve on a GPU when the batch runs on GPUs, else on the CPU, so that every output of a
    batch is made with the same settings whichever worker made it.

    Examples
    --------
    >>> from stylekit.image.config import ImageStyleConfig
    >>> pin_to_device(ImageStyleConfig(), gpus=0).size, pin_to_device(ImageStyleConfig(), gpus=1).size
    (384, 512)
    """
    if getattr(config, "size", 0) is None and hasattr(config, "resolved_size"):
        import torch
        return dataclasses.replace(config, size=config.resolved_size(torch.device("cuda" if gpus else "cpu")))
    return config
