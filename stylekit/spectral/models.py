"""PCA, shallow AE, deep AE, LSTM-AE and VAE on normalised magnitude frames (Roche et al., SMC 2019).

Every model maps frames ``x`` of shape ``(..., n_bins)`` in [0, 1] (see :mod:`stylekit.spectral.features`)
to latents ``z`` of shape ``(..., latent)`` and back, with one interface:

* ``encode(x) -> z``, ``decode(z) -> x_hat``, ``forward(x) = decode(encode(x))`` (deterministic: the VAE
  uses its posterior mean);
* ``loss(x, *, generator=None) -> (total, terms)``: the training objective as a scalar plus a dict of named
  scalar terms (``{"mse": ...}``, plus ``"kl"`` for the VAE);
* :func:`save_model` / :func:`load_model`: ``state_dict`` + constructor arguments + STFT config, never a
  pickled module.

The LSTM-AE needs frame *sequences*: its inputs are ``(batch, time, n_bins)`` or ``(time, n_bins)``; the frame
models accept any leading shape, so a whole note ``(time, n_bins)`` goes through every model the same way.

Notes
-----
The paper does not publish code; layer sizes follow the issue: shallow AE 513-L-513 with a sigmoid code (the
classic shallow AE; with a linear code it could at best equal PCA), deep AE 513-256-128-L mirrored with ReLU
hidden layers and linear code/output, LSTM-AE one LSTM layer (128 units) + linear layer on each side with a
latent vector per frame, VAE with the deep AE's layout. The VAE objective is ``sum_bins (x - x_hat)^2 + beta *
KL`` per frame, i.e. a Gaussian decoder of fixed variance absorbed into ``beta``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .._checkpoint import UnloadableFile, check_tensors, load_torch_file, tree_digest
from .._io import atomic_write
from ..errors import ConfigError, WeightsError
from .config import MAX_BETA, MAX_N_FFT, SpectralSTFTConfig, check_float, check_int

#: Largest hidden layer and most hidden layers a model may have (a stored config is bounded like an option).
MAX_HIDDEN = 8192
MAX_LAYERS = 8

__all__ = ["SpectralModel", "PCA", "ShallowAE", "DeepAE", "LSTMAE", "VAE", "MODELS", "build_model",
           "save_model", "load_model", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "stylekit.spectral.checkpoint/1"


class SpectralModel(nn.Module):
    """Base of the five models; subclasses set ``name`` and implement ``encode``/``decode``.

    Examples
    --------
    >>> import torch
    >>> model = build_model("dae", n_bins=129, latent=8)
    >>> x = torch.rand(5, 129)
    >>> model.encode(x).shape, model(x).shape, sorted(model.loss(x)[1])
    (torch.Size([5, 8]), torch.Size([5, 129]), ['mse'])
    """

    name: ClassVar[str] = ""

    def __init__(self, n_bins: int, latent: int) -> None:
        super().__init__()
        check_int("n_bins", n_bins, 2, MAX_N_FFT // 2 + 1)
        if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1 or latent > n_bins:
            raise ConfigError(f"need 1 <= latent <= n_bins, got latent={latent}, n_bins={n_bins}")
        self.n_bins = n_bins
        self.latent = latent

    def config(self) -> dict:
        """Constructor keyword arguments (JSON-able); ``type(self)(**self.config())`` rebuilds the model."""
        return {"n_bins": self.n_bins, "latent": self.latent}

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Frames ``(..., n_bins)`` in [0, 1] -> latents ``(..., latent)``."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Latents ``(..., latent)`` -> frames ``(..., n_bins)`` (unclipped; ideally in [0, 1])."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct frames: ``decode(encode(x))``, same shape as ``x``."""
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training objective: mean over frames of the squared error summed over bins."""
        mse = ((self(x) - x) ** 2).sum(-1).mean()
        return mse, {"mse": mse.detach()}


class PCA(SpectralModel):
    """Principal component analysis as a linear autoencoder, fitted in closed form by :meth:`fit`.

    ``encode(x) = (x - mean) @ components.T``, ``decode(z) = z @ components + mean`` with orthonormal
    ``components`` of shape (latent, n_bins): the right singular vectors of the centred training frames.

    Examples
    --------
    >>> import torch
    >>> frames = torch.rand(200, 16)
    >>> pca = PCA(16, 16).fit(frames)                     # all components: exact reconstruction
    >>> torch.allclose(pca(frames), frames, atol=1e-4)
    True
    """

    name = "pca"

    def __init__(self, n_bins: int, latent: int) -> None:
        super().__init__(n_bins, latent)
        self.register_buffer("mean", torch.zeros(n_bins))
        self.register_buffer("components", torch.eye(latent, n_bins))

    @torch.no_grad()
    def fit(self, frames: torch.Tensor) -> "PCA":
        """Fit to frames of shape (n_frames, n_bins) by SVD of the centred data (float64 for accuracy)."""
        x = frames.reshape(-1, self.n_bins).double()
        if x.shape[0] < self.latent:
            raise ConfigError(f"PCA with latent {self.latent} needs at least that many frames, got {x.shape[0]}")
        mean = x.mean(0)
        _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
        self.mean.copy_(mean.float())
        self.components.copy_(vh[: self.latent].float())
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.components + self.mean


def _hidden(hidden) -> tuple[int, ...]:
    """The hidden layer sizes, checked (a checkpoint's stored config goes through here too)."""
    if not isinstance(hidden, (list, tuple)) or len(hidden) > MAX_LAYERS:
        raise ConfigError(f"hidden must be a list of at most {MAX_LAYERS} layer sizes, got {hidden!r}")
    return tuple(check_int("hidden layer size", h, 1, MAX_HIDDEN) for h in hidden)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


#: Output non-linearities of the shallow AE: ``sigmoid`` (default: the features lie in [0, 1], and a linear
#: decoder trained with a squared error could at best reach PCA's subspace) or ``linear`` (the layout of
#: checkpoints made before the option existed, which stored no ``output``).
AE_OUTPUTS = ("sigmoid", "linear")


class ShallowAE(SpectralModel):
    """n_bins -> latent (sigmoid) -> n_bins (sigmoid, or linear): one hidden layer, the code.

    Notes
    -----
    With a linear output the best a squared-error fit can reach is PCA's subspace, so "PCA beats the shallow
    AE" would hold by construction; the sigmoid output makes the decoder non-linear and the comparison a test.

    Examples
    --------
    >>> import torch
    >>> ShallowAE(129, 8)(torch.rand(4, 129)).shape
    torch.Size([4, 129])
    """

    name = "ae"

    def __init__(self, n_bins: int, latent: int, output: str = "sigmoid") -> None:
        super().__init__(n_bins, latent)
        if output not in AE_OUTPUTS:
            raise ConfigError(f"output must be one of {', '.join(AE_OUTPUTS)}, got {output!r}")
        self.output = output
        self.enc = nn.Linear(n_bins, latent)
        self.dec = nn.Linear(latent, n_bins)

    def config(self) -> dict:
        return {**super().config(), "output": self.output}

    @torch.no_grad()
    def init_from_data(self, frames: torch.Tensor) -> None:
        """Start the sigmoid output at the training frames' mean (its bias = logit of the mean per bin), as
        PCA starts from the mean: from a zero bias every bin would start at 0.5 (40 dB off for a silent bin)
        and take thousands of steps to get down, which would make the comparison a test of the budget."""
        if self.output == "sigmoid":
            mean = frames.reshape(-1, self.n_bins).mean(0).clamp(1e-3, 1 - 1e-3)
            self.dec.bias.copy_(torch.logit(mean))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.enc(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        y = self.dec(z)
        return torch.sigmoid(y) if self.output == "sigmoid" else y


class DeepAE(SpectralModel):
    """n_bins -> hidden... -> latent -> reversed hidden -> n_bins, ReLU between layers, linear code and output.

    Examples
    --------
    >>> import torch
    >>> DeepAE(129, 8, hidden=(64, 32)).encode(torch.rand(4, 129)).shape
    torch.Size([4, 8])
    """

    name = "dae"

    def __init__(self, n_bins: int, latent: int, hidden: tuple[int, ...] | list[int] = (256, 128)) -> None:
        super().__init__(n_bins, latent)
        self.hidden = _hidden(hidden)
        self.enc = _mlp([n_bins, *self.hidden, latent])
        self.dec = _mlp([latent, *reversed(self.hidden), n_bins])

    def config(self) -> dict:
        return {**super().config(), "hidden": list(self.hidden)}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


class LSTMAE(SpectralModel):
    """Recurrent AE sized like the deep AE: its layer widths (``hidden``, default 256, 128) with the innermost
    layer on each side an LSTM.

    Encoder: ``n_bins -> 256`` (ReLU) ``-> LSTM(128) -> latent`` per frame; decoder: ``latent -> LSTM(128) ->
    256`` (ReLU) ``-> n_bins``. Inputs are frame sequences ``(batch, time, n_bins)`` or ``(time, n_bins)``; the
    latent sequence has the same time axis. The LSTMs are causal (unidirectional), so a frame's code depends on
    the frames before it. ``hidden`` as one int (``128``) is the one-LSTM layout of checkpoints made before the
    widths were matched to the deep AE.

    Examples
    --------
    >>> import torch
    >>> LSTMAE(129, 8, hidden=32)(torch.rand(2, 10, 129)).shape          # (batch, frames, bins)
    torch.Size([2, 10, 129])
    """

    name = "lstm"

    def __init__(self, n_bins: int, latent: int, hidden: int | tuple[int, ...] | list[int] = (256, 128)) -> None:
        super().__init__(n_bins, latent)
        self.legacy = isinstance(hidden, int) and not isinstance(hidden, bool)
        widths = _hidden([hidden] if self.legacy else hidden)
        if not widths:
            raise ConfigError("the LSTM-AE needs at least one hidden layer")
        self.hidden = widths
        *dense, rnn = widths
        self.enc_hidden = _mlp_relu([n_bins, *dense])
        self.enc_rnn = nn.LSTM(dense[-1] if dense else n_bins, rnn, batch_first=True)
        self.enc_out = nn.Linear(rnn, latent)
        self.dec_rnn = nn.LSTM(latent, rnn, batch_first=True)
        self.dec_hidden = _mlp_relu([rnn, *reversed(dense)])
        self.dec_out = nn.Linear(dense[0] if dense else rnn, n_bins)

    def config(self) -> dict:
        return {**super().config(), "hidden": self.hidden[0] if self.legacy else list(self.hidden)}

    @staticmethod
    def _seq(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        if x.dim() == 2:
            return x.unsqueeze(0), True
        if x.dim() != 3:
            raise ConfigError(f"LSTM-AE expects (time, bins) or (batch, time, bins), got shape {tuple(x.shape)}")
        return x, False

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x, squeeze = self._seq(x)
        z = self.enc_out(self.enc_rnn(self.enc_hidden(x))[0])
        return z.squeeze(0) if squeeze else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z, squeeze = self._seq(z)
        x = self.dec_out(self.dec_hidden(self.dec_rnn(z)[0]))
        return x.squeeze(0) if squeeze else x


def _mlp_relu(sizes: list[int]) -> nn.Sequential:
    """Linear + ReLU for each consecutive pair of ``sizes`` (empty for fewer than two sizes)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class VAE(SpectralModel):
    """Variational AE with the deep AE's layout; ``beta`` weighs the KL term.

    ``encode`` returns the posterior mean; :meth:`posterior` returns ``(mean, logvar)``.

    Examples
    --------
    >>> import torch
    >>> vae = VAE(129, 8, hidden=(64,))
    >>> loss, terms = vae.loss(torch.rand(4, 129), generator=torch.Generator().manual_seed(0))
    >>> sorted(terms)
    ['kl', 'mse']
    """

    name = "vae"

    def __init__(self, n_bins: int, latent: int, hidden: tuple[int, ...] | list[int] = (256, 128),
                 beta: float = 1e-3) -> None:
        super().__init__(n_bins, latent)
        self.beta = check_float("beta", beta, 0.0, MAX_BETA)
        self.hidden = _hidden(hidden)
        self.enc = _mlp([n_bins, *self.hidden, 2 * latent])
        self.dec = _mlp([latent, *reversed(self.hidden), n_bins])

    def config(self) -> dict:
        return {**super().config(), "hidden": list(self.hidden), "beta": self.beta}

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), each ``(..., latent)``."""
        mean, logvar = self.enc(x).chunk(2, dim=-1)
        return mean, logvar.clamp(-20.0, 10.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mean, logvar = self.posterior(x)
        # drawn on the CPU (where the generator lives), so the noise is the same on any device
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        z = mean + eps * torch.exp(0.5 * logvar)
        mse = ((self.decode(z) - x) ** 2).sum(-1).mean()
        kl = (0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar)).sum(-1).mean()
        return mse + self.beta * kl, {"mse": mse.detach(), "kl": kl.detach()}


MODELS: dict[str, type[SpectralModel]] = {m.name: m for m in (PCA, ShallowAE, DeepAE, LSTMAE, VAE)}


def build_model(name: str, *, n_bins: int, latent: int, **kwargs) -> SpectralModel:
    """Construct a model by name (``pca``, ``ae``, ``dae``, ``lstm``, ``vae``).

    Examples
    --------
    >>> type(build_model("pca", n_bins=129, latent=8)).__name__
    'PCA'
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](n_bins=n_bins, latent=latent, **kwargs)


def _digest(header: dict, state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_model(path: str | os.PathLike, model: SpectralModel, stft: SpectralSTFTConfig, *,
               meta: dict | None = None, overwrite: bool = False, extra: dict | None = None) -> Path:
    """Write a checkpoint: format tag, model name, constructor args, STFT config, ``meta``, state_dict, digest.

    ``meta`` is free JSON-able provenance (training config, data set, seed). ``extra`` holds tensors/values
    that are not part of the model (e.g. optimiser state of a resumable run); it has its own digest, so the
    model's digest (which identifies the weights) does not depend on it. The digests (sha256 over the header
    and every tensor's bytes) let :func:`load_model` refuse a corrupt or hand-edited file; anyone can recompute
    them, so they are no protection against a deliberately crafted one (that is what the bounded,
    ``weights_only`` loader and the validation of every stored setting are for).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> path = save_model(Path(tempfile.mkdtemp()) / "ae.pt", ShallowAE(129, 8), SpectralSTFTConfig(n_fft=256))
    >>> path.suffix
    '.pt'
    """
    header = {"format": CHECKPOINT_FORMAT, "model": model.name, "config": model.config(),
              "stft": stft.to_dict(), "meta": meta or {}}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {**header, "state_dict": state, "digest": _digest(header, state)}
    if extra:
        ckpt["extra"] = extra
        ckpt["extra_digest"] = tree_digest(extra)
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write(path, lambda t: t.write_bytes(buf.getvalue()), overwrite=overwrite)


def load_model(path: str | os.PathLike, *, with_extra: bool = False):
    """Load a checkpoint written by :func:`save_model`.

    Parameters
    ----------
    path : path
    with_extra : bool
        Also return the ``extra`` dict (resume state), verified against its own digest.

    Returns
    -------
    (model, stft, meta) or (model, stft, meta, extra)
        The model in eval mode, its :class:`SpectralSTFTConfig` and the provenance dict (plus
        ``"checkpoint_digest"``, the verified digest that identifies these weights).

    Raises
    ------
    WeightsError
        Missing file; refused by :func:`stylekit._checkpoint.load_torch_file` (not a torch.save archive,
        compressed or oversized entries, objects that need unpickling); a foreign checkpoint; a digest mismatch
        (corrupt or edited); NaN weights; stored settings out of the bounds of the options they mirror; or
        weights that do not fit the stored architecture.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from stylekit.spectral.config import SpectralSTFTConfig
    >>> path = save_model(Path(tempfile.mkdtemp()) / "ae.pt", ShallowAE(129, 8), SpectralSTFTConfig(n_fft=256))
    >>> model, stft, meta = load_model(path)
    >>> type(model).__name__, stft.n_fft
    ('ShallowAE', 256)
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{p}: checkpoint not found")
    try:
        ckpt = load_torch_file(p)       # bounded before unpacking, weights_only, no warnings printed
    except UnloadableFile as e:
        raise WeightsError(f"{p}: not a loadable stylekit spectral checkpoint ({e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{p}: foreign checkpoint (no '{CHECKPOINT_FORMAT}' format tag); "
                           "train one with `stylekit spectral train`")
    header, state, digest = _checked_fields(p, ckpt)
    try:
        stft = SpectralSTFTConfig.from_dict(header["stft"])
        if not isinstance(header["config"], dict):
            raise ConfigError("the model config is not a mapping")
        config = dict(header["config"])
        if header["model"] == "ae":     # made before the output option: a linear decoder
            config.setdefault("output", "linear")
        model = build_model(header["model"], **config)
        model.load_state_dict(state, strict=True)
    except (ConfigError, TypeError, RuntimeError) as e:
        raise WeightsError(f"{p}: checkpoint does not match its architecture ({str(e).splitlines()[0]})") from None
    if model.n_bins != stft.n_bins:
        raise WeightsError(f"{p}: model has {model.n_bins} bins but its STFT config gives {stft.n_bins}")
    model.eval()
    meta = {**header["meta"], "checkpoint_digest": digest}
    if with_extra:
        return model, stft, meta, ckpt.get("extra") or {}
    return model, stft, meta


def _checked_fields(p: Path, ckpt: dict) -> tuple[dict, dict, str]:
    """``(header, state_dict, digest)`` of a loaded checkpoint, after its fields, its digests and its tensors
    were checked (a WeightsError naming ``p`` otherwise)."""
    try:
        header = {k: ckpt[k] for k in ("format", "model", "config", "stft", "meta")}
        state = ckpt["state_dict"]
        digest = ckpt["digest"]
    except KeyError as e:
        raise WeightsError(f"{p}: checkpoint lacks {e.args[0]!r}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{p}: checkpoint state_dict is malformed")
    if not isinstance(header["meta"], dict) or not isinstance(digest, str):
        raise WeightsError(f"{p}: checkpoint meta or digest is malformed")
    try:
        ok = _digest(header, state) == digest
        if ok and "extra" in ckpt:
            ok = tree_digest(ckpt["extra"]) == ckpt.get("extra_digest")
    except (TypeError, ValueError, RuntimeError, RecursionError):
        ok = False
    if not ok:
        raise WeightsError(f"{p}: checksum mismatch: the checkpoint was modified or is corrupt; "
                           "re-train or re-download it")
    bad = check_tensors([state, ckpt.get("extra")])
    if bad is not None:
        raise WeightsError(f"{p}: unusable checkpoint ({bad}); re-train it")
    return header, state, digest
