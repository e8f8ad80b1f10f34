"""VGG19's layer names, and what they need of an input. Plain Python: no torch import, so configs and the
command line's ``--help`` can check layer names without loading the network."""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CONV_NAMES", "LAYER_NAMES", "POOLING", "min_input_size"]

#: The sixteen convolutions of VGG19 in order, as (block, index-in-block).
_BLOCKS = [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)]
CONV_NAMES: tuple[str, ...] = tuple(f"conv{b}_{i}" for b, n in _BLOCKS for i in range(1, n + 1))
#: The pooling modes of the network.
POOLING = ("max", "avg")


def _layer_sequence() -> list[str]:
    names = []
    for conv in CONV_NAMES:
        names += [conv, "relu" + conv[4:]]
        block, idx = conv[4:].split("_")
        if (int(block), int(idx)) in _BLOCKS:      # the last convolution of a block is followed by pooling
            names.append(f"pool{block}")
    return names


#: Every layer name, in network order: conv1_1, relu1_1, ..., pool1, ..., relu5_4, pool5.
LAYER_NAMES: tuple[str, ...] = tuple(_layer_sequence())


def min_input_size(layers: Iterable[str]) -> int:
    """Smallest H and W (pixels) for which every requested layer has at least one spatial position.

    Each pooling layer before (or at) the deepest requested layer halves the resolution, so the minimum is
    ``2 ** pools``: 1 for block 1, 2 for block 2, ... 16 for block 5 and 32 for ``pool5``.

    Examples
    --------
    >>> min_input_size(["relu1_1"]), min_input_size(["relu4_2", "relu5_1"]), min_input_size(["pool5"])
    (1, 16, 32)
    """
    deepest = max(LAYER_NAMES.index(n) for n in layers)
    pools = sum(1 for n in LAYER_NAMES[: deepest + 1] if n.startswith("pool"))
    return 2 ** pools
