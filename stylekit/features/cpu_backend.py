"""The CPU convolution backend: fast 3x3 convolutions for the frozen VGG19, forward and input gradient, with
the policy of which kernel each layer takes, the memory it keeps, and one switch (:func:`enable`).

The switch is off for library users (the kept filter transforms cost memory, 14x the size of the filters,
which they did not ask for) and on in the ``stylekit`` command. ``VGG19Features(winograd=...)``
overrides it for one network.

torch's CPU ``conv2d`` (oneDNN) runs VGG19's 3x3 convolutions near this CPU's multiply-add peak, so the only
way to make them faster is to do fewer multiplies. Winograd's minimal filtering algorithms do exactly that.
Three implementations are used, each where it was measured to be the fastest (docs/benchmarks.md):

* NNPACK's Winograd F(6x6, 3x3) kernels (inside PyTorch's CPU build) called with the filters' transforms
  computed once (:class:`PrecomputedNNPACKConv3x3`). PyTorch's own binding of NNPACK transforms the filters
  again on every call, which is most of the time of a 256- or 512-channel layer on a small map; kept, the
  same kernels are the fastest of all for every VGG19 layer but the 3-channel first one, from 128 positions
  up (``benchmarks/bench_image.py conv-kernels``). NNPACK has no Python API and PyTorch does not expose this
  mode, so :class:`NNPACKLibrary` calls its C function ``nnp_convolution_inference`` through ctypes. It checks
  itself against ``conv2d`` once, and when the library or the symbol is missing, the two below are used.
* PyTorch's binding of NNPACK (:class:`NNPACKConv3x3`) on large maps (blocks 1-3 at usual sizes);
* :class:`TileWinograd`, F(4x4, 3x3) written with torch ops (two small transform products and one batched
  GEMM), on the small maps of 256- and 512-channel layers (block 4 at 256 px, block 5 at 512 px), where
  PyTorch's NNPACK binding is slower than the direct kernel and this one is faster than both
  (forward + input gradient). PyTorch has no Winograd kernel of its own for these shapes, which is why it is
  written here.

The input gradient of NNPACK's is the same convolution with the weight transposed and flipped; that of
:class:`TileWinograd` is the exact adjoint of its own forward pass.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["enable", "enabled", "conv3x3", "transform_bytes", "workspace_bytes", "nnpack_available",
           "NNPACKConv3x3", "TileWinograd", "tile_weight", "NNPACKLibrary", "NNPACKKernel",
           "PrecomputedNNPACKConv3x3", "nnpack_library", "gradient_weight"]

_nnpack_ok: bool | None = None
_enabled = False


def enable(on: bool = True) -> None:
    """Turn the Winograd kernels on (or off) for every :class:`~stylekit.features.VGG19Features` built with
    ``winograd=None`` (the default), from its next pass.

    Examples
    --------
    >>> from stylekit.features import cpu_backend
    >>> cpu_backend.enable()
    >>> cpu_backend.enabled()
    True
    >>> cpu_backend.enable(False)         # back to the library's default
    """
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    """Whether :func:`enable` has turned the Winograd kernels on.

    Examples
    --------
    >>> from stylekit.features import cpu_backend
    >>> cpu_backend.enabled()             # off unless the program (or the stylekit command) turned it on
    False
    """
    return _enabled


# Which 3x3 convolution kernel each layer takes on the CPU in fp32, chosen by measurement at one and two
# threads (``benchmarks/bench_image.py conv-kernels``; the figures are in docs/benchmarks.md):
# * where this module can call NNPACK itself (the filters' Winograd transforms computed once): NNPACK's
#   F(6x6, 3x3) for every layer with at least 16 input channels on maps of at least 128 positions, the fastest
#   kernel measured for every such VGG19 layer; torch's conv2d elsewhere (the 3-channel first layer, tiny maps);
# otherwise, through PyTorch's own bindings:
# * maps of at least 2048 positions (blocks 1-3 at usual sizes): NNPACK's Winograd kernels; not for the
#   3-channel first layer, where torch's own kernel is faster in both directions;
# * smaller maps of 384 positions or more in the 256- and 512-channel layers (C_in * C_out >= 256 * 512: block 4
#   at 256-384 px, block 5 at 512 px): Winograd F(4x4, 3x3) in torch ops (TileWinograd), where NNPACK is slower
#   than the direct kernel;
# * everything else: torch's conv2d.
_PRECOMPUTED_MIN_POSITIONS = 128
_WINOGRAD_MIN_POSITIONS = 2048
_WINOGRAD_MIN_CHANNELS = 16
_TILE_MIN_POSITIONS = 384
_TILE_MIN_CHANNEL_PRODUCT = 256 * 512
# torch.compile cannot trace NNPACK's convolution (its op has no meta kernel), so a compiled network takes
# torch's own convolutions; eager calls of the same network keep the Winograd ones.
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def _takes_kept_nnpack(in_channels: int, positions: int) -> bool:
    """Whether a layer takes NNPACK with kept transforms (where stylekit can call NNPACK itself)."""
    return in_channels >= _WINOGRAD_MIN_CHANNELS and positions >= _PRECOMPUTED_MIN_POSITIONS


def conv3x3(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *, cache) -> torch.Tensor | None:
    """The 3x3, stride 1, padding 1 convolution of a float32 CPU ``h`` with the frozen ``w`` and ``b`` through the
    fastest Winograd kernel for its shape, or None where torch's ``conv2d`` is the one to take.

    ``cache(kind, make)`` returns a derived form of ``w`` (its transforms), made once by ``make()``.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> x, w, b = torch.rand(1, 64, 48, 48), torch.randn(64, 64, 3, 3) / 24, torch.zeros(64)
    >>> kept = {}
    >>> y = conv3x3(x, w, b, cache=lambda kind, make: kept.setdefault(kind, make()))
    >>> y is None or torch.allclose(y, F.conv2d(x, w, b, padding=1), atol=1e-4)   # None: conv2d is faster here
    True
    """
    if (w.dtype != torch.float32 or w.requires_grad or torch.is_autocast_enabled("cpu") or _is_compiling()):
        return None
    positions = h.shape[-2] * h.shape[-1]
    lib = nnpack_library()
    if lib is not None:
        if _takes_kept_nnpack(h.shape[1], positions):
            kernel = cache("nnpack-kernel", lambda: lib.transform(w))
            kernel_t = cache("nnpack-kernel-t", lambda: lib.transform(gradient_weight(w)))
            return PrecomputedNNPACKConv3x3.apply(h, kernel, b, kernel_t)
    elif positions >= _WINOGRAD_MIN_POSITIONS:
        if h.shape[1] >= _WINOGRAD_MIN_CHANNELS and nnpack_available():
            flipped = cache("nnpack", lambda: gradient_weight(w))
            return NNPACKConv3x3.apply(h, w.contiguous(), b.contiguous(), flipped)
    elif positions >= _TILE_MIN_POSITIONS and w.shape[0] * w.shape[1] >= _TILE_MIN_CHANNEL_PRODUCT:
        return TileWinograd.apply(h, cache("tile", lambda: tile_weight(w)), b)
    return None


def transform_bytes(convs, kept: dict) -> int:
    """Bytes of filter transforms a pass will still add: ``convs`` is ``[(name, weight), ...]`` and ``kept`` the
    network's ``{(name, kind): (weight, transform)}``. An upper bound: every layer that could take the kept
    kernel on a large enough map counts.

    Examples
    --------
    >>> import torch
    >>> transform_bytes([("conv3_1", torch.zeros(256, 128, 3, 3))], {}) >= 0    # 0 without NNPACK
    True
    """
    lib = nnpack_library()
    if lib is None:
        return 0
    total = 0
    for name, w in convs:
        if w.dtype == torch.float32 and _takes_kept_nnpack(w.shape[1], _PRECOMPUTED_MIN_POSITIONS):
            for kind, (k, c) in (("nnpack-kernel", w.shape[:2]), ("nnpack-kernel-t", w.shape[1::-1])):
                cached = kept.get((name, kind))
                if cached is None or cached[0] is not w:
                    total += lib.transform_bytes(c, k)
    return total


def workspace_bytes(sequence, shape_of, height: int, width: int) -> int:
    """Bytes of the NNPACK workspace a pass through the layers ``sequence`` on a ``height x width`` image needs;
    ``shape_of(conv_name)`` is that convolution's weight shape. One buffer serves every layer and is kept at its
    largest, so this is the largest layer's need.

    Examples
    --------
    >>> import torch
    >>> shapes = {"conv1_1": (64, 3, 3, 3), "conv1_2": (64, 64, 3, 3)}
    >>> workspace_bytes(["conv1_1", "relu1_1", "conv1_2"], shapes.get, 64, 64) >= 0
    True
    """
    lib = nnpack_library()
    if lib is None:
        return 0
    need, h, w = 0, height, width
    for name in sequence:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        elif name.startswith("conv"):
            k, c = shape_of(name)[:2]
            if _takes_kept_nnpack(c, h * w):
                need = max(need, lib.workspace_bytes(c, k, h, w), lib.workspace_bytes(k, c, h, w))
    return need


def nnpack_available() -> bool:
    """Whether this torch build has NNPACK's own 3x3 convolution (``torch._nnpack_spatial_convolution``).

    Examples
    --------
    >>> isinstance(nnpack_available(), bool)       # whether this torch build has NNPACK's convolution
    True
    """
    global _nnpack_ok
    if _nnpack_ok is None:
        try:
            # _nnpack_available() also initialises NNPACK; without that call its convolutions fail.
            _nnpack_ok = bool(torch._nnpack_available()) and hasattr(torch, "_nnpack_spatial_convolution")
        except Exception:  # pragma: no cover - builds without NNPACK
            _nnpack_ok = False
    return _nnpack_ok


def gradient_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) -> (C, K, 3, 3): channels swapped, kernel flipped. Convolving an output gradient with it
    (stride 1, padding 1) gives the input gradient, which is how the NNPACK paths take their backward pass.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> w, x = torch.randn(4, 2, 3, 3), torch.randn(1, 2, 5, 5, requires_grad=True)
    >>> y = F.conv2d(x, w, padding=1)
    >>> g = torch.randn_like(y)
    >>> y.backward(g)
    >>> torch.allclose(x.grad, F.conv2d(g, gradient_weight(w), padding=1), atol=1e-5)
    True
    """
    return weight.transpose(0, 1).flip(2, 3).contiguous()


class NNPACKConv3x3(torch.autograd.Function):
    """3x3, stride 1, padding 1 convolution with a frozen weight, through NNPACK in both directions.

    The input gradient of such a convolution is the same convolution of the output gradient with the weight
    transposed (in/out channels swapped) and flipped, so the backward pass is Winograd-fast too.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> x, w, b = torch.rand(1, 16, 12, 12), torch.randn(8, 16, 3, 3), torch.zeros(8)
    >>> if nnpack_available():
    ...     y = NNPACKConv3x3.apply(x, w, b, gradient_weight(w))
    ...     assert torch.allclose(y, F.conv2d(x, w, b, padding=1), atol=1e-3)
    """

    @staticmethod
    def forward(ctx, x, weight, bias, weight_t):
        ctx.save_for_backward(weight_t)
        return torch._nnpack_spatial_convolution(x.contiguous(), weight, bias, [1, 1], [1, 1])

    @staticmethod
    def backward(ctx, grad):
        (weight_t,) = ctx.saved_tensors
        gx = torch._nnpack_spatial_convolution(grad.contiguous(), weight_t, None, [1, 1], [1, 1])
        return gx, None, None, None


class _Size(ctypes.Structure):
    _fields_ = [("width", ctypes.c_size_t), ("height", ctypes.c_size_t)]


class _Padding(ctypes.Structure):
    _fields_ = [("top", ctypes.c_size_t), ("right", ctypes.c_size_t), ("bottom", ctypes.c_size_t),
                ("left", ctypes.c_size_t)]


# enum values from NNPACK's include/nnpack.h
_WT8X8 = 3                                    # nnp_convolution_algorithm_wt8x8: Winograd F(6x6, 3x3)
_PRECOMPUTE, _REUSE = 2, 3                    # nnp_convolution_transform_strategy_{precompute,reuse}
_IDENTITY = 0                                 # nnp_activation_identity
_KERNEL3, _STRIDE1, _PAD1 = _Size(3, 3), _Size(1, 1), _Padding(1, 1, 1, 1)


@dataclass(frozen=True, eq=False)
class NNPACKKernel:
    """A (K, C, 3, 3) filter bank in NNPACK's transformed layout (opaque bytes), with its channel counts.

    Examples
    --------
    >>> import torch
    >>> lib = nnpack_library()
    >>> kernel = lib.transform(torch.randn(8, 16, 3, 3)) if lib is not None else None
    >>> kernel is None or (kernel.out_channels, kernel.in_channels) == (8, 16)
    True
    """

    data: torch.Tensor
    out_channels: int
    in_channels: int


class NNPACKLibrary:
    """``nnp_convolution_inference`` of the NNPACK inside libtorch_cpu, with the filter transforms kept.

    Use :func:`nnpack_library`, which returns the shared instance, or None where this build has no NNPACK
    symbols or the self-check fails. Float32, contiguous CPU tensors, batch 1 per call.

    Threads: NNPACK runs on a pthreadpool of ``torch.get_num_threads()`` threads made here, one per thread
    count. The workspace NNPACK needs is kept per Python thread and only grows, as PyTorch's own binding does
    with its workspace.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> lib = nnpack_library()              # None where this torch build has no NNPACK symbols
    >>> x, w = torch.rand(1, 16, 12, 12), torch.randn(8, 16, 3, 3)
    >>> lib is None or torch.allclose(lib.conv(x, lib.transform(w)), F.conv2d(x, w, padding=1), atol=1e-3)
    True
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._conv = lib.nnp_convolution_inference
        self._conv.restype = ctypes.c_int
        self._conv.argtypes = ([ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, _Size, _Padding, _Size,
                                _Size] + [ctypes.c_void_p] * 5 + [ctypes.POINTER(ctypes.c_size_t), ctypes.c_int,
                                                                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p])
        self._create_pool = lib.pthreadpool_create
        self._create_pool.restype = ctypes.c_void_p
        self._create_pool.argtypes = [ctypes.c_size_t]
        lib.nnp_initialize.restype = ctypes.c_int
        if lib.nnp_initialize() != 0:
            raise RuntimeError("nnp_initialize failed (this CPU is not supported by NNPACK)")
        self._pools: dict[int, int] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._zeros: dict[int, torch.Tensor] = {}

    def _pool(self) -> int | None:
        n = torch.get_num_threads()
        if n <= 1:
            return None                                   # NNPACK then runs on the calling thread
        with self._lock:
            if n not in self._pools:
                pool = self._create_pool(n)
                if not pool:
                    raise RuntimeError("pthreadpool_create failed")
                self._pools[n] = pool
            return self._pools[n]

    def _call(self, strategy, c, k, size, inp, kernel, bias, out, workspace, nbytes: ctypes.c_size_t) -> None:
        status = self._conv(_WT8X8, strategy, c, k, size, _PAD1, _KERNEL3, _STRIDE1, inp, kernel, bias, out,
                            workspace, ctypes.byref(nbytes), _IDENTITY, None, self._pool(), None)
        if status != 0:
            raise RuntimeError(f"nnp_convolution_inference failed with status {status}")

    def transform_bytes(self, in_channels: int, out_channels: int) -> int:
        """Bytes of the transform of a (out_channels, in_channels, 3, 3) filter bank, as NNPACK reports it."""
        nbytes = ctypes.c_size_t(0)
        # the transform does not depend on the image size: any size will do
        self._call(_PRECOMPUTE, in_channels, out_channels, _Size(16, 16), None, None, None, None, None, nbytes)
        return nbytes.value

    def transform(self, weight: torch.Tensor) -> NNPACKKernel:
        """The Winograd transform of a (K, C, 3, 3) float32 filter bank, to pass to :meth:`conv` any number of times."""
        w = weight.detach().to(torch.float32).contiguous()
        k, c = w.shape[:2]
        nbytes = ctypes.c_size_t(self.transform_bytes(c, k))
        data = torch.empty(nbytes.value, dtype=torch.uint8)
        self._call(_PRECOMPUTE, c, k, _Size(16, 16), None, w.data_ptr(), None, None, data.data_ptr(), nbytes)
        return NNPACKKernel(data, k, c)

    def workspace_bytes(self, in_channels: int, out_channels: int, height: int, width: int) -> int:
        """Bytes of workspace NNPACK needs for one convolution of this shape (it keeps the largest one needed)."""
        nbytes = ctypes.c_size_t(0)
        self._call(_REUSE, in_channels, out_channels, _Size(width, height), None, None, None, None, None, nbytes)
        return nbytes.value

    def _workspace(self, nbytes: int) -> int:
        buf = getattr(self._local, "workspace", None)
        if buf is None or buf.numel() < nbytes + 64:
            buf = self._local.workspace = torch.empty(nbytes + 64, dtype=torch.uint8)
        return buf.data_ptr() + (-buf.data_ptr()) % 64   # NNPACK wants 64-byte-aligned buffers

    def conv(self, x: torch.Tensor, kernel: NNPACKKernel, bias: torch.Tensor | None = None) -> torch.Tensor:
        """3x3, stride 1, padding 1 convolution of ``(N, C, H, W)`` float32 with a transformed filter bank."""
        if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 4:
            raise ValueError(f"NNPACK takes a (N, C, H, W) float32 CPU tensor, got {tuple(x.shape)} {x.dtype} on "
                             f"{x.device.type}")
        x = x.contiguous()
        n, c, h, w = x.shape
        if c != kernel.in_channels:
            raise ValueError(f"input has {c} channels, the kernel expects {kernel.in_channels}")
        k = kernel.out_channels
        if bias is None:
            bias = self._zeros.get(k)
            if bias is None:
                bias = self._zeros[k] = torch.zeros(k)
        bias = bias.detach().to(torch.float32).contiguous()
        out = torch.empty(n, k, h, w)
        size, nbytes = _Size(w, h), ctypes.c_size_t(self.workspace_bytes(c, k, h, w))
        workspace = self._workspace(nbytes.value)
        for i in range(n):
            self._call(_REUSE, c, k, size, x[i].data_ptr(), kernel.data.data_ptr(), bias.data_ptr(),
                       out[i].data_ptr(), workspace, nbytes)
        return out


_library: NNPACKLibrary | None = None
_library_checked = False


def _load_library() -> NNPACKLibrary | None:
    libdir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        if (libdir / name).exists():
            lib = ctypes.CDLL(str(libdir / name))     # already loaded by torch: this finds the same copy
            if hasattr(lib, "nnp_convolution_inference") and hasattr(lib, "pthreadpool_create"):
                return NNPACKLibrary(lib)
    return None


def nnpack_library() -> NNPACKLibrary | None:
    """The shared :class:`NNPACKLibrary`, or None where it is unavailable or fails its check against conv2d.

    Examples
    --------
    >>> lib = nnpack_library()
    >>> lib is None or isinstance(lib, NNPACKLibrary)
    True
    """
    global _library, _library_checked
    if not _library_checked:
        _library_checked = True
        try:
            lib = _load_library()
            if lib is not None:
                # a wrong signature or layout would give wrong numbers, not an error: compare once
                g = torch.Generator().manual_seed(0)
                x, w = torch.randn(2, 16, 11, 13, generator=g), torch.randn(24, 16, 3, 3, generator=g)
                b = torch.randn(24, generator=g)
                want = F.conv2d(x, w, b, padding=1)
                if float((lib.conv(x, lib.transform(w), b) - want).abs().max()) <= 1e-4 * float(want.abs().max()):
                    _library = lib
        except (OSError, AttributeError, RuntimeError, ValueError):  # pragma: no cover - other builds
            _library = None
    return _library


class PrecomputedNNPACKConv3x3(torch.autograd.Function):
    """3x3, stride 1, padding 1 convolution with a frozen weight, through NNPACK with the transforms kept.

    ``kernel`` is :meth:`NNPACKLibrary.transform` of the weight and ``kernel_t`` that of the weight with its
    channels swapped and flipped, whose convolution with the output gradient is the input gradient.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> lib, x, w = nnpack_library(), torch.rand(1, 16, 12, 12), torch.randn(8, 16, 3, 3)
    >>> if lib is not None:
    ...     y = PrecomputedNNPACKConv3x3.apply(x, lib.transform(w), None, lib.transform(gradient_weight(w)))
    ...     assert torch.allclose(y, F.conv2d(x, w, padding=1), atol=1e-3)
    """

    @staticmethod
    def forward(ctx, x, kernel, bias, kernel_t):
        ctx.kernel_t = kernel_t
        return nnpack_library().conv(x, kernel, bias)

    @staticmethod
    def backward(ctx, grad):
        return nnpack_library().conv(grad, ctx.kernel_t), None, None, None


# Winograd F(4x4, 3x3) with the interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016):
# a 6x6 input tile d and a 3x3 filter g give the 4x4 output tile A^T [(G g G^T) * (B^T d B)] A.
_BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                   [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
_AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                   dtype=torch.float64)
# Both 2-D transforms as one matrix each acting on a flattened tile (vec(B^T d B) = (B^T kron B^T) vec(d)),
# so each is a single GEMM over all tiles and channels instead of many 6x6 products. Their entries are small
# integers, exact in any float type.
_KB = torch.kron(_BT, _BT).float()   # (36, 36)
_KA = torch.kron(_AT, _AT).float()   # (16, 36)
_KB_T = _KB.T.contiguous()
_KA_T = _KA.T.contiguous()


def tile_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters -> their (36, K, C) Winograd transforms G g G^T (computed in float64).

    Examples
    --------
    >>> import torch
    >>> tile_weight(torch.randn(8, 4, 3, 3)).shape
    torch.Size([36, 8, 4])
    """
    k, c = weight.shape[:2]
    u = torch.einsum("ai,kcij,bj->abkc", _G, weight.detach().double(), _G)
    return u.reshape(36, k, c).to(weight.dtype).contiguous()


def _tiles(h: int, w: int) -> tuple[int, int]:
    return -(-h // 4), -(-w // 4)


def _forward(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    n, c, h, w = x.shape
    k = u.shape[1]
    th, tw = _tiles(h, w)
    p = n * th * tw
    # padding 1 on the top/left, and enough on the bottom/right for whole 6x6 tiles with stride 4
    xp = F.pad(x, (1, 4 * tw + 1 - w, 1, 4 * th + 1 - h))
    d = xp.unfold(2, 6, 4).unfold(3, 6, 4).permute(4, 5, 1, 0, 2, 3).reshape(36, c * p)
    v = (_KB.to(d) @ d).view(36, c, p)
    m = torch.bmm(u, v)                                            # (36, K, P): the only large product
    y = (_KA.to(m) @ m.view(36, k * p)).view(4, 4, k, n, th, tw)
    y = y.permute(3, 2, 4, 0, 5, 1).reshape(n, k, 4 * th, 4 * tw)[:, :, :h, :w]
    return y + bias.view(1, k, 1, 1) if bias is not None else y.contiguous()


def _adjoint(gy: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The input gradient: every step of :func:`_forward` transposed, in reverse order."""
    n, k, h, w = gy.shape
    c = u.shape[2]
    th, tw = _tiles(h, w)
    p = n * th * tw
    g = F.pad(gy, (0, 4 * tw - w, 0, 4 * th - h)).view(n, k, th, 4, tw, 4)
    g = g.permute(3, 5, 1, 0, 2, 4).reshape(16, k * p)
    gm = (_KA_T.to(g) @ g).view(36, k, p)
    gv = torch.bmm(u.transpose(1, 2), gm)                          # (36, C, P)
    gd = (_KB_T.to(gv) @ gv.view(36, c * p)).view(6, 6, c, n, th, tw)
    cols = gd.permute(3, 2, 0, 1, 4, 5).reshape(n, c * 36, th * tw)
    # the tiles overlap by two rows/columns: fold (col2im) adds the overlaps, as the adjoint of unfold must
    gxp = F.fold(cols, (4 * th + 2, 4 * tw + 2), kernel_size=6, stride=4)
    return gxp[:, :, 1:h + 1, 1:w + 1].contiguous()


class TileWinograd(torch.autograd.Function):
    """3x3, stride 1, padding 1 convolution with a frozen weight as Winograd F(4x4, 3x3) in torch ops.

    ``u`` is :func:`tile_weight` of the weight. Float32, CPU. Same results as ``conv2d`` up to float rounding
    (about 2e-6 relative); the backward pass is the exact adjoint of the forward one.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> x, w, b = torch.rand(1, 4, 10, 9), torch.randn(8, 4, 3, 3), torch.randn(8)
    >>> torch.allclose(TileWinograd.apply(x, tile_weight(w), b), F.conv2d(x, w, b, padding=1), atol=1e-4)
    True
    """

    @staticmethod
    def forward(ctx, x, u, bias):
        ctx.save_for_backward(u)
        return _forward(x, u, bias)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return _adjoint(grad, u), None, None
