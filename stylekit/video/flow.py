"""Optical flow between input frames, and where it can be trusted (Ruder, Dosovitskiy & Brox 2016, sec. 3.2).

Flow comes from OpenCV's DIS (Kroeger et al., *Fast Optical Flow using Dense Inverse Search*, ECCV 2016), the
``MEDIUM`` preset, on grey frames. Why DIS: it is in the core of ``opencv-python-headless`` (no contrib
build), runs offline on the CPU in milliseconds for the frame sizes style transfer works at, is deterministic,
and is far closer to the true motion than Farneback's polynomial expansion, which smooths the flow across
object edges (and so the warped result across them) and underestimates large shifts. The DeepFlow and
EpicFlow that Ruder et al. used are not in a maintained package, and learned flow (RAFT) would need weights
and a GPU to be worth it.

All arrays here are numpy: a flow is ``(H, W, 2)`` float32 ``(dx, dy)`` in pixels.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["optical_flow", "reliable", "warp_flow", "OCCLUSION", "BOUNDARY"]

#: Ruder et al.'s forward-backward check: a pixel is occluded where
#: ``|f~ + b|^2 > a (|f~|^2 + |b|^2) + c`` with ``(a, c) = OCCLUSION``.
OCCLUSION = (0.01, 0.5)
#: Their motion-boundary test: ``|grad b_x|^2 + |grad b_y|^2 > a |b|^2 + c`` with ``(a, c) = BOUNDARY``.
BOUNDARY = (0.01, 0.002)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ConfigError("video needs OpenCV: pip install 'stylekit[video]' (or opencv-python-headless)") from None
    return cv2


def _grey(frame: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    frame = np.ascontiguousarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ConfigError(f"a frame must be an (H, W, 3) uint8 array, got {frame.shape} {frame.dtype}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def optical_flow(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The flow ``f`` from ``src`` to ``dst`` ((H, W, 3) uint8 RGB): ``src(p) ~ dst(p + f(p))``.

    Returns ``(H, W, 2)`` float32 ``(dx, dy)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frame = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    >>> flow = optical_flow(frame, frame)
    >>> flow.shape, float(np.abs(flow).max()) < 0.5          # no motion
    ((32, 32, 2), True)
    """
    cv2 = _cv2()
    a, b = _grey(src), _grey(dst)
    if a.shape != b.shape:
        raise ConfigError(f"frames of different sizes: {a.shape} and {b.shape}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None).astype(np.float32)


def warp_flow(field: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``field`` ((H, W, C)) sampled at ``p + flow(p)`` (bilinear), and a mask of the pixels whose sample
    lies inside the frame.

    Examples
    --------
    >>> import numpy as np
    >>> field = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    >>> shifted, inside = warp_flow(field, np.tile(np.float32([1, 0]), (4, 4, 1)))     # one pixel to the right
    >>> shifted[0, :3, 0], inside[0]
    (array([1., 2., 3.], dtype=float32), array([ True,  True,  True, False]))
    """
    cv2 = _cv2()
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    out = cv2.remap(np.ascontiguousarray(field, dtype=np.float32), mx, my, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return out.reshape(field.shape), inside


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Where the previous frame, warped to the current one by ``backward``, can be trusted.

    ``backward`` is the flow from the current frame to the previous one (the one that warps), ``forward`` the
    flow from the previous frame to the current one. Returns an ``(H, W)`` float32 mask, 1 where the pixel is
    seen in both frames and 0 where it is occluded (the two flows disagree), on a motion boundary, or comes
    from outside the previous frame.

    Notes
    -----
    Ruder et al. check the forward flow against the backward one to build the weights of the backward warp;
    this is that same test, written for the warp that is used (``forward`` sampled where ``backward`` points).
    Samples from outside the frame are excluded too: the border has nothing to carry over.

    Examples
    --------
    >>> import numpy as np
    >>> still = np.zeros((8, 8, 2), np.float32)
    >>> float(reliable(still, still).min())                   # no motion: every pixel can be trusted
    1.0
    """
    fwd, inside = warp_flow(forward, backward)
    a, c = OCCLUSION
    occluded = ((fwd + backward) ** 2).sum(-1) > a * ((fwd ** 2).sum(-1) + (backward ** 2).sum(-1)) + c
    gy_x, gx_x = np.gradient(backward[..., 0])
    gy_y, gx_y = np.gradient(backward[..., 1])
    a, c = BOUNDARY
    boundary = gx_x ** 2 + gy_x ** 2 + gx_y ** 2 + gy_y ** 2 > a * (backward ** 2).sum(-1) + c
    return (inside & ~occluded & ~boundary).astype(np.float32)
