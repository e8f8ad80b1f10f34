"""Uploaded files: kept in the server's private folder under names the server makes, checked against the limits.

The page sends each file as the raw body of one request (not a multipart form, so no form parser is needed
and the bytes are counted against the limit as they arrive), and the server never sees a client's file name: an
upload is stored as ``<random id><suffix>``, the suffix chosen from the format found in the file's own bytes.
An image is refused by its header (before any decoding) when it has too many pixels, and a sound when it is
too long; then the file is read as ``stylekit image`` / ``stylekit audio`` would read it, so a file the run
could not use is refused at once, with the reader's own message.
"""
from __future__ import annotations

import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, StylekitError
from .config import ServeConfig
from .frames import Frame

__all__ = ["Upload", "Uploads", "UploadRefused", "KINDS"]

KINDS = ("image", "audio")
#: Image formats (as PIL names them) that the image reader takes, and the suffix they are stored under.
_IMAGE_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}
#: Sound formats (as libsndfile names them) and their suffix; anything else is tried by the audio reader's
#: fallback (MP3 through audioread) as ``.audio``.
_AUDIO_SUFFIX = {"WAV": ".wav", "WAVEX": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3", "AIFF": ".aiff"}


class UploadRefused(StylekitError):
    """An upload over a limit or not usable; the message is for the page (413 for limits, 400 otherwise).

    Examples
    --------
    >>> e = UploadRefused("photo.heic: not an image or a sound", status=415)
    >>> str(e), e.status
    ('photo.heic: not an image or a sound', 415)
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Upload:
    """One accepted file: ``info`` is what the page shows (size in pixels, or duration and rate).

    Examples
    --------
    >>> from pathlib import Path
    >>> Upload(id="a1", kind="image", path=Path("a1.png"), info={"width": 64, "height": 48}).to_json()
    {'id': 'a1', 'kind': 'image', 'width': 64, 'height': 48}
    """

    id: str
    kind: str
    path: Path = field(repr=False)
    info: dict
    spectrogram: Frame | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = {"id": self.id, "kind": self.kind, **self.info}
        if self.spectrogram is not None:
            out["spectrogram"] = self.spectrogram.to_json()
        return out


class Uploads:
    """The uploads of one server, in ``folder`` (private to the server; removed with it).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from stylekit.image.io import save_image
    >>> from stylekit.serve.config import ServeConfig
    >>> uploads = Uploads(Path(tempfile.mkdtemp()), ServeConfig())
    >>> part = save_image(torch.rand(1, 3, 24, 32), uploads.new_path().with_suffix(".png"))
    >>> upload = uploads.accept("image", part)               # checked, and kept under a name the server makes
    >>> upload.kind, uploads.get(upload.id, "image") is upload
    ('image', True)
    """

    def __init__(self, folder: Path, config: ServeConfig) -> None:
        self.folder = folder
        self.config = config
        self._items: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def new_path(self) -> Path:
        """A fresh private name for an upload being received (``<id>.part``)."""
        return self.folder / f"{secrets.token_hex(12)}.part"

    def get(self, upload_id: object, kind: str) -> Upload:
        """The upload ``upload_id`` of ``kind``; :class:`KeyError` when there is none (the id is only looked up,
        never used as a path)."""
        with self._lock:
            item = self._items.get(upload_id) if isinstance(upload_id, str) else None
        if item is None or item.kind != kind:
            raise KeyError(upload_id)
        return item

    def accept(self, kind: str, part: Path) -> Upload:
        """Check the received file ``part`` against the limits and the medium's reader; keep it or remove it.
        Raises :class:`UploadRefused` with a message for the page."""
        try:
            upload = self._check_image(part) if kind == "image" else self._check_audio(part)
        except BaseException as e:
            for p in self.folder.glob(part.stem + ".*"):       # the part, or the file it was renamed to
                p.unlink(missing_ok=True)
            if isinstance(e, UploadRefused) or not isinstance(e, StylekitError):
                raise
            # the reader's message names the private file: name the upload instead
            text = re.sub(re.escape(str(self.folder / part.stem)) + r"\.\w+", f"the uploaded {kind}", str(e))
            raise UploadRefused(text) from None
        with self._lock:
            self._items[upload.id] = upload
        return upload

    def _keep(self, part: Path, suffix: str) -> tuple[str, Path]:
        upload_id = part.stem
        path = part.with_name(upload_id + suffix)
        part.rename(path)
        return upload_id, path

    def _check_image(self, part: Path) -> Upload:
        from ..image.io import image_header, load_image
        try:
            fmt, (w, h) = image_header(part)     # the pixel limit comes before decoding
        except InputError:
            raise UploadRefused("not an image file (or an unsupported format)") from None
        if fmt not in _IMAGE_SUFFIX:
            raise UploadRefused(f"this image's format ({fmt or 'unknown'}) is not supported: use PNG, JPEG, WebP, "
                                "TIFF, BMP or GIF")
        if w * h > self.config.max_pixels:
            raise UploadRefused(f"the image is {w}x{h} = {w * h / 1e6:.1f} megapixels; this server takes at most "
                                f"{self.config.max_pixels / 1e6:g} megapixels (stylekit serve --max-pixels)",
                                status=413)
        upload_id, path = self._keep(part, _IMAGE_SUFFIX[fmt])
        x = load_image(path)                 # decodable, as the run will read it (EXIF orientation applied)
        return Upload(upload_id, "image", path, {"width": int(x.shape[-1]), "height": int(x.shape[-2])})

    def _check_audio(self, part: Path) -> Upload:
        from ..audio.config import AudioStyleConfig
        from ..audio.io import audio_header
        from ..audio.pipeline import read_input
        from ..audio.transform import to_spectrogram
        from .frames import spectrogram_frame
        fmt, frames, rate = audio_header(part)     # the length limit comes before decoding
        if rate and frames / rate > self.config.max_audio_seconds:
            raise UploadRefused(f"the sound is {frames / rate:.1f} s long; this server takes at most "
                                f"{self.config.max_audio_seconds:g} s (stylekit serve --max-audio-seconds)",
                                status=413)
        upload_id, path = self._keep(part, _AUDIO_SUFFIX.get(fmt or "", ".audio"))
        config = AudioStyleConfig()
        sound = read_input(path, config, "content")
        seconds = sound.length / sound.rate
        if seconds > self.config.max_audio_seconds:      # a format without a header that says its length
            raise UploadRefused(f"the sound is {seconds:.1f} s long; this server takes at most "
                                f"{self.config.max_audio_seconds:g} s (stylekit serve --max-audio-seconds)",
                                status=413)
        spec = spectrogram_frame(to_spectrogram(sound.clip.samples, config.spectrogram))
        return Upload(upload_id, "audio", path, {"seconds": round(seconds, 3), "rate": sound.rate}, spec)

    def close(self) -> None:
        with self._lock:
            self._items.clear()
