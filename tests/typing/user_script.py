"""A user's script, type-checked by mypy in CI (tests/test_types.py): stylekit's public names complete and check.

Not run by pytest (it would load the network weights); mypy reads it only.
"""
from __future__ import annotations

import torch

import stylekit
from stylekit.features import VGG19Features
from stylekit.losses import StyleTransferLoss, gram_matrix

content_layers: list[str] = ["relu4_2"]
style_layers: list[str] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
style_weights: dict[str, float] = {"relu1_1": 0.5, "relu3_1": 0.5}


def train_step(output: torch.Tensor, batch: torch.Tensor, painting: torch.Tensor) -> float:
    net = VGG19Features([*content_layers, *style_layers], weights="caffe", pooling="avg")
    loss = StyleTransferLoss(net, content_layers=content_layers, style_layers=style_layers, style_weight=5.0)
    loss.set_style(painting)
    total, terms = loss(output, content=batch)
    per_sample: torch.Tensor = StyleTransferLoss(style=painting, reduction="none",
                                                 style_layers=style_weights).total(output, batch)
    g: torch.Tensor = gram_matrix(output)
    return float(total) + float(terms["style"]) + float(per_sample.sum()) + float(g.sum())


def top_level() -> None:
    # The lazy names of `stylekit` are typed: mypy (and IDEs) see the real signatures.
    cfg: stylekit.ImageStyleConfig = stylekit.ImageStyleConfig(size=128, style_weight=5.0)
    result: stylekit.ImageResult = stylekit.stylize_image("photo.jpg", ["painting.jpg"], size=cfg.size)
    data: torch.Tensor = result.data
    loss: stylekit.StyleTransferLoss = stylekit.StyleTransferLoss(style=data, content_layers=content_layers)
    device: torch.device = stylekit.resolve_device("auto")
    print(loss, device, stylekit.__version__)
