"""Image files <-> tensors, and resizing. The only module that touches PIL.

Tensors are ``(1, 3, H, W)`` float32 RGB in [0, 1].
"""
from __future__ import annotations

import json
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .._io import atomic_write
from ..errors import ConfigError, InputError
from .config import OUTPUT_FORMATS

__all__ = ["load_image", "image_header", "save_image", "resize", "resize_long_edge", "read_metadata",
           "OUTPUT_FORMATS"]

METADATA_KEY = "stylekit"


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) float32 in [0, 1]. Alpha is composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        a = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float32)
        hi = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / hi, 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV ...
    return np.asarray(img, dtype=np.float32) / 255.0


def image_header(path: str | os.PathLike) -> tuple[str | None, tuple[int, int]]:
    """``(format, (width, height))`` as an image file's header declares them, without decoding its pixels: what
    a size limit needs before :func:`load_image` decodes the whole picture. Raises :class:`InputError` naming
    the file when it is not an image PIL can open.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> path = save_image(torch.rand(1, 3, 24, 32), Path(tempfile.mkdtemp()) / "noise.png")
    >>> image_header(path)
    ('PNG', (32, 24))
    """
    try:
        with Image.open(path) as img:
            return img.format, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{path}: not an image file (or an unsupported format)") from None


def load_image(path: str | os.PathLike, *, long_edge: int | None = None) -> torch.Tensor:
    """Read an image file as ``(1, 3, H, W)`` float32 RGB in [0, 1].

    JPEG, PNG, WebP, TIFF, BMP and GIF (first frame) are read; EXIF orientation is applied; alpha is
    composited over white; grayscale, 16-bit, palette and CMYK images become RGB. With ``long_edge``, the
    image is resized (Lanczos) so its longer side has that many pixels.

    Raises :class:`InputError` naming the file for anything unreadable.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> import torch
    >>> path = save_image(torch.rand(1, 3, 24, 32), folder / "noise.png")
    >>> load_image(path).shape, load_image(path, long_edge=16).shape
    (torch.Size([1, 3, 24, 32]), torch.Size([1, 3, 12, 16]))
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an image")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                if long_edge and img.format == "JPEG":
                    img.draft("RGB", (long_edge, long_edge))  # decode at a reduced scale when much larger
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                arr = _to_float_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{p}: image is too large to decode safely ({e.args[0].split('.')[0]})") from None
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image file (or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as e:
        raise InputError(f"{p}: cannot decode image ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not np.isfinite(arr).all():
        raise InputError(f"{p}: image contains non-finite values")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].contiguous()
    if long_edge:
        x = resize_long_edge(x, long_edge)
    return x


def resize_long_edge(x: torch.Tensor, long_edge: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` so that ``max(H, W) == long_edge``, keeping the aspect ratio (antialiased).

    Examples
    --------
    >>> import torch
    >>> resize_long_edge(torch.rand(1, 3, 24, 32), 16).shape
    torch.Size([1, 3, 12, 16])
    """
    h, w = x.shape[-2:]
    s = long_edge / max(h, w)
    hw = (max(1, round(h * s)), max(1, round(w * s)))
    return resize(x, hw)


def resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of ``(N, C, H, W)`` in [0, 1] to ``hw``.

    Examples
    --------
    >>> import torch
    >>> resize(torch.rand(1, 3, 24, 32), (12, 20)).shape
    torch.Size([1, 3, 12, 20])
    """
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=tuple(hw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def _write_tiff16(arr: np.ndarray, path: Path, description: str) -> None:
    """Write (H, W, 3) uint16 as an uncompressed baseline RGB TIFF.

    Pillow cannot write 16-bit-per-channel RGB, and the project keeps to pillow/numpy for images, so this is
    the ~30-line minimal writer: one strip, tags in ascending order, little endian.
    """
    h, w, _ = arr.shape
    data = arr.astype("<u2").tobytes()
    desc = description.encode("utf-8") + b"\0"
    entries = [  # tag, type, count, value-or-offset placeholder
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
        (270, 2, len(desc), None), (273, 4, 1, None), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(data)),
        (284, 3, 1, 1),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    extra_off = 8 + ifd_size
    bps_off, desc_off = extra_off, extra_off + 6
    data_off = desc_off + len(desc)
    data_off += data_off % 2
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag == 258:
            value = bps_off
        elif tag == 270:
            value = desc_off
        elif tag == 273:
            value = data_off
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 16, 16, 16) + desc
    out += b"\0" * (data_off - len(out))
    out += data
    path.write_bytes(bytes(out))


def save_image(x: torch.Tensor, path: str | os.PathLike, *, metadata: dict | None = None,
               overwrite: bool = False, bit_depth: int = 8, quality: int = 95) -> Path:
    """Write ``(1, 3, H, W)`` (or ``(3, H, W)``) in [0, 1] atomically as PNG, JPEG or TIFF.

    ``metadata`` (JSON-serialisable settings) is embedded: a PNG text chunk, the JPEG comment, or the TIFF
    ImageDescription, under the key ``stylekit``; :func:`read_metadata` reads it back. ``bit_depth=16`` is
    available for TIFF.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> import torch
    >>> save_image(torch.rand(1, 3, 24, 32), folder / "noise.png", metadata={"seed": 0}).name
    'noise.png'
    >>> save_image(torch.rand(1, 3, 24, 32), folder / "noise.png")
    Traceback (most recent call last):
    ...
    stylekit.errors.ConfigError: ...noise.png: already exists (use --overwrite to replace it)
    """
    p = Path(path)
    fmt = OUTPUT_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{p}: unsupported output format {p.suffix or '(none)'}; use .png, .jpg or .tif")
    if bit_depth not in (8, 16) or (bit_depth == 16 and fmt != "TIFF"):
        raise ConfigError(f"{p}: {bit_depth}-bit output is supported for 8-bit PNG/JPEG/TIFF and 16-bit TIFF")
    if x.dim() == 4:
        x = x[0]
    arr = x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    text = json.dumps(metadata or {}, sort_keys=True, default=str)

    def write(tmp: Path) -> None:
        if bit_depth == 16:
            _write_tiff16(np.round(arr * 65535).astype(np.uint16), tmp, text)
            return
        img = Image.fromarray(np.round(arr * 255).astype(np.uint8), "RGB")
        if fmt == "PNG":
            from PIL.PngImagePlugin import PngInfo
            info = PngInfo()
            info.add_text(METADATA_KEY, text)
            img.save(tmp, format="PNG", pnginfo=info)
        elif fmt == "JPEG":
            img.save(tmp, format="JPEG", quality=quality, subsampling=0, comment=text.encode("utf-8"))
        else:
            img.save(tmp, format="TIFF", compression="tiff_deflate", description=text)

    return atomic_write(p, write, overwrite=overwrite)


def read_metadata(path: str | os.PathLike) -> dict:
    """The settings :func:`save_image` embedded in an output file (``{}`` when there are none).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> import torch
    >>> path = save_image(torch.rand(1, 3, 8, 8), folder / "out.png", metadata={"seed": 0})
    >>> read_metadata(path)
    {'seed': 0}
    """
    with Image.open(path) as img:
        text = img.info.get(METADATA_KEY) or img.info.get("comment")
        if text is None and hasattr(img, "tag_v2"):
            text = img.tag_v2.get(270)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}
