#!/usr/bin/env python3
"""Use stylekit's loss module in another project: train a tiny feed-forward stylizer (Johnson et al. 2016).

What it shows
-------------
``stylekit.losses.StyleTransferLoss`` as the *training loss* of a network, on batches (B > 1): the loss builds its
own VGG19 and takes its style target from a painting once (``StyleTransferLoss(style=painting)``), and each batch
is its own content target (``loss(output, batch)``). The
network here is a small version of Johnson et al.'s transformer (strided convs, residual blocks, upsampling);
a real one would train for hours on COCO, this demo trains for a few steps on crops of the bundled photo.

    python examples/train_feedforward.py --steps 200 --size 128 -o stylizer.pt
    python examples/train_feedforward.py --steps 3 --size 32          # CI smoke run
    python examples/train_feedforward.py --style-loss sw              # sliced Wasserstein (Heitz et al. 2021)

Settings: Adam lr 1e-3, style weight 10, content weight 1, TV weight 10, caffe VGG19 features,
content relu2_2, style relu1_1..relu4_1. ``--style-loss`` picks the style statistics (gram, mean-std, w2, sw,
hist; see ``stylekit.losses.STYLE_LOSSES``); the sliced Wasserstein loss draws new directions at every step.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from stylekit.image import load_image, resize_long_edge
from stylekit.losses import STYLE_LOSSES, StyleTransferLoss

HERE = Path(__file__).resolve().parent


class Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(ch, affine=True),
                                  nn.ReLU(), nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"),
                                  nn.InstanceNorm2d(ch, affine=True))

    def forward(self, x):
        return x + self.body(x)


class TinyStylizer(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> stylized image of the same size (H, W divisible by 4)."""

    def __init__(self, width: int = 16, blocks: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 9, padding=4, padding_mode="reflect"), nn.InstanceNorm2d(width, affine=True), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width, affine=True), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * width, affine=True), nn.ReLU(),
            *[Residual(4 * width) for _ in range(blocks)],
            nn.Upsample(scale_factor=2), nn.Conv2d(4 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 3, 9, padding=4, padding_mode="reflect"))

    def forward(self, x):
        return torch.sigmoid(self.net(x) + torch.logit(x.clamp(1e-3, 1 - 1e-3)))


def random_crops(image: torch.Tensor, n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    _, _, h, w = image.shape
    ys = torch.randint(0, h - size + 1, (n,), generator=gen)
    xs = torch.randint(0, w - size + 1, (n,), generator=gen)
    return torch.cat([image[:, :, y:y + size, x:x + size] for y, x in zip(ys.tolist(), xs.tolist())])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--content", default=HERE / "images" / "chelsea.png")
    ap.add_argument("--style", default=HERE / "images" / "starry_night.jpg")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--size", type=int, default=128, help="training crop size")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--style-loss", default="gram", choices=list(STYLE_LOSSES), help="style statistics to match")
    ap.add_argument("-o", "--output", default=None, help="save the trained stylizer's state_dict here")
    args = ap.parse_args()

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # The loss builds its own VGG19 (caffe weights) with these layers and takes the painting as its style.
    loss_fn = StyleTransferLoss(style=load_image(args.style, long_edge=2 * args.size),
                                content_layers=["relu2_2"], style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1"],
                                content_weight=1.0, style_weight=10.0, tv_weight=10.0,
                                style_loss=args.style_loss).to(device)
    photo = resize_long_edge(load_image(args.content), 2 * args.size)
    model = TinyStylizer().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    first = None
    for step in range(1, args.steps + 1):
        batch = random_crops(photo, args.batch, args.size, gen).to(device)
        total, terms = loss_fn(model(batch), batch)          # (output, content)
        opt.zero_grad()
        total.backward()
        opt.step()
        first = first if first is not None else float(total.detach())
        if step == 1 or step % 20 == 0 or step == args.steps:
            print(f"step {step:4d}  " + "  ".join(f"{k} {float(v):.4f}" for k, v in terms.items()))
    print(f"loss {first:.4f} -> {float(total.detach()):.4f}")
    if args.output:
        from stylekit._io import atomic_write
        atomic_write(args.output, lambda tmp: torch.save({"state_dict": model.state_dict(), "width": 16, "blocks": 2}, tmp))
        print(f"saved {args.output}")


if __name__ == "__main__":
    main()
