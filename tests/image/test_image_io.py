"""Image files: formats, EXIF, alpha, modes, 16 bit, metadata round trips, atomic non-clobbering writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit.errors import ConfigError, InputError
from stylekit.image import load_image, match_color, read_metadata, rgb_to_yiq, save_image, yiq_to_rgb


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif"),
                                        ("BMP", ".bmp")])
def test_reads_formats(tmp_path, fmt, suffix):
    arr = np.zeros((6, 10, 3), np.uint8)
    arr[:, :5] = (255, 0, 0)
    p = tmp_path / f"img{suffix}"
    Image.fromarray(arr).save(p, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    x = load_image(p)
    assert x.shape == (1, 3, 6, 10) and x.dtype == torch.float32
    assert float(x[0, 0, 3, 1]) > 0.9 and float(x[0, 1, 3, 1]) < 0.1


def test_exif_orientation_is_honoured(tmp_path):
    arr = np.zeros((4, 8, 3), np.uint8)
    arr[:, :4] = 255  # left half white
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW when displayed
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif, quality=100)
    x = load_image(p)
    assert x.shape[-2:] == (8, 4)
    assert float(x[0, :, 1, 2].mean()) > 0.8 and float(x[0, :, 6, 2].mean()) < 0.2  # white is now on top


def test_alpha_composited_over_white(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(p)
    torch.testing.assert_close(load_image(p), torch.ones(1, 3, 4, 4))


def test_palette_with_transparency_gray_cmyk_and_16bit(tmp_path):
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    torch.testing.assert_close(load_image(tmp_path / "p.png"), torch.ones(1, 3, 4, 4))
    Image.new("L", (3, 2), 128).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (1, 3, 2, 3) and torch.allclose(g, torch.full_like(g, 128 / 255))
    Image.new("CMYK", (3, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    c = load_image(tmp_path / "c.jpg")
    assert float(c[0, 0].mean()) > 0.8 and float(c[0, 1].mean()) < 0.2
    Image.fromarray(np.full((2, 2), 65535 // 2, np.uint16)).save(tmp_path / "16.png")
    s = load_image(tmp_path / "16.png")
    assert torch.allclose(s, torch.full_like(s, 0.5), atol=1e-3)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    x = load_image(tmp_path / "a.gif")
    assert float(x[0, 0].mean()) > 0.9 and float(x[0, 2].mean()) < 0.1


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am text"), "not an image"),
    (lambda p: p.write_bytes(_png_bytes()[:60]), "cannot decode|not an image"),
])
def test_bad_files_raise_input_error_naming_the_file(tmp_path, make, match):
    p = tmp_path / "bad.jpg"
    make(p)
    with pytest.raises(InputError, match=match) as e:
        load_image(p)
    assert "bad.jpg" in str(e.value)


def _png_bytes():
    import io
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError, match="too large"):
        load_image(p)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_save_load_roundtrip_with_metadata(tmp_path, suffix):
    x = torch.rand(1, 3, 8, 12)
    p = tmp_path / f"o{suffix}"
    save_image(x, p, metadata={"style_weight": 10.0, "styles": ["a.jpg"]})
    y = load_image(p)
    assert y.shape == x.shape
    assert (y - x).abs().mean() < (0.05 if suffix == ".jpg" else 0.003)
    assert read_metadata(p) == {"style_weight": 10.0, "styles": ["a.jpg"]}


def test_16bit_tiff(tmp_path):
    x = torch.linspace(0, 1, 3 * 4 * 5).reshape(1, 3, 4, 5)
    p = tmp_path / "o.tif"
    save_image(x, p, bit_depth=16, metadata={"k": 1})
    with Image.open(p) as img:
        assert img.size == (5, 4)
    assert read_metadata(p) == {"k": 1}
    raw = np.frombuffer(p.read_bytes()[-3 * 4 * 5 * 2:], "<u2").reshape(4, 5, 3)
    np.testing.assert_allclose(raw / 65535, x[0].permute(1, 2, 0).numpy(), atol=1 / 65535)


def test_never_overwrites_without_permission_and_leaves_no_partial(tmp_path):
    p = tmp_path / "o.png"
    save_image(torch.rand(1, 3, 4, 4), p)
    before = p.read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        save_image(torch.rand(1, 3, 4, 4), p)
    assert p.read_bytes() == before
    save_image(torch.zeros(1, 3, 4, 4), p, overwrite=True)
    assert p.read_bytes() != before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["o.png"]


def test_yiq_roundtrip_and_color_matching():
    x = torch.rand(1, 3, 6, 6)
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(x)), x, rtol=1e-4, atol=1e-5)
    style = torch.rand(1, 3, 16, 16) * torch.tensor([1.0, 0.2, 0.1]).view(1, 3, 1, 1)  # reddish
    content = torch.rand(1, 3, 16, 16) * torch.tensor([0.1, 0.3, 0.9]).view(1, 3, 1, 1)  # bluish
    m = match_color(style, content)
    torch.testing.assert_close(m.mean((0, 2, 3)), content.mean((0, 2, 3)), atol=0.03, rtol=0)


def test_outputs_get_normal_permissions(tmp_path):
    import os
    p = tmp_path / "o.png"
    save_image(torch.rand(1, 3, 4, 4), p)
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == 0o666 & ~umask
