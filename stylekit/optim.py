"""The optimisation loop: L-BFGS or Adam over an image tensor, with callbacks, early stopping and resume.

:func:`optimize` minimises ``criterion(x) -> (total, terms)`` over ``x``; :func:`coarse_to_fine` runs it over
a pyramid of sizes, warm-starting each scale from the previous result.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .errors import ConfigError

__all__ = ["optimize", "coarse_to_fine", "pyramid_sizes", "Progress", "LBFGS", "OptimizationInterrupted",
           "OPTIMIZERS", "auto_history"]

OPTIMIZERS = ("lbfgs", "adam")
Criterion = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass(frozen=True)
class Progress:
    """What a callback receives after each evaluation.

    ``image`` is the current iterate (detached, not a copy: clone it to keep it). ``scale`` and ``n_scales``
    are set by :func:`coarse_to_fine` (1-based), else 1 and 1.

    Examples
    --------
    >>> import torch
    >>> steps = []
    >>> x = optimize(torch.zeros(1, 4), lambda x: ((x - 1).pow(2).sum(), {}), steps=3,
    ...              callback=lambda p: steps.append((p.step, p.steps)))
    >>> steps
    [(1, 3), (2, 3), (3, 3)]
    """

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    elapsed: float
    image: torch.Tensor = field(repr=False)
    scale: int = 1
    n_scales: int = 1


class OptimizationInterrupted(KeyboardInterrupt):
    """Raised on Ctrl-C inside :func:`optimize`; carries the best iterate so far and a resumable state.

    Examples
    --------
    >>> import torch
    >>> e = OptimizationInterrupted(torch.zeros(1, 3, 8, 8), {"step": 5})
    >>> e.state["step"], isinstance(e, KeyboardInterrupt)
    (5, True)
    """

    def __init__(self, best: torch.Tensor, state: dict) -> None:
        super().__init__("interrupted")
        self.best = best
        self.state = state


def auto_history(n: int, *, max_history: int = 100, budget_bytes: float = 2 * 1024 ** 3, itemsize: int = 4) -> int:
    """L-BFGS history length for ``n`` variables: at most ``max_history``, and at most what fits
    ``budget_bytes`` for the two (m, n) history matrices; never below 5.

    Examples
    --------
    >>> auto_history(3 * 512 * 512), auto_history(10 ** 10)      # the full history, or the least that fits
    (100, 5)
    """
    return int(max(5, min(max_history, budget_bytes // (2 * n * itemsize))))


class LBFGS:
    """L-BFGS without line search, on one flat tensor, with its history in preallocated tensors.

    Each :meth:`step` makes two passes over the ``(2m, n)`` history (one product with the new pair and the
    gradient, one to form the direction) and two ``m x m`` triangular solves, using the compact representation
    of the inverse Hessian (Byrd, Nocedal & Schnabel 1994) instead of the two-loop recursion.

    Notes
    -----
    Written here rather than using ``torch.optim.LBFGS`` because that one keeps its history as Python lists of
    vectors and loops over them (slow on GPU, one kernel per vector), evaluates the first step twice when
    ``max_iter`` is 1, and its state cannot be saved and reloaded with ``weights_only=True``. The update rule
    is the same as torch's with ``line_search_fn=None``: first step ``min(1, 1/|g|_1) * lr``, then ``lr``;
    the initial Hessian scale is ``s'y / y'y`` of the newest pair; pairs with ``s'y <= 1e-10`` are skipped.

    Examples
    --------
    >>> import torch
    >>> opt, x = LBFGS(2, history=5), torch.tensor([3.0, -2.0])
    >>> for _ in range(10):
    ...     x = x + opt.step(2 * x)                   # the gradient of |x|^2
    >>> x.abs().max() < 1e-4
    tensor(True)
    """

    def __init__(self, n: int, *, history: int = 100, lr: float = 1.0, device=None, dtype=torch.float32) -> None:
        if history < 1:
            raise ConfigError(f"L-BFGS history must be >= 1, got {history}")
        self.m, self.n, self.lr = history, n, lr
        # S (rows 0..m-1) and Y (rows m..2m-1) in one matrix, so every product with the history is a single
        # pass over memory: H @ [y, s, g] gives all the new dot products at once.
        self.H = torch.zeros(2 * history, n, device=device, dtype=dtype)
        self.S, self.Y = self.H[:history], self.H[history:]
        self.SY = torch.zeros(history, history, device=device, dtype=torch.float64)
        self.YY = torch.zeros(history, history, device=device, dtype=torch.float64)
        self.k = 0        # number of stored pairs
        self.head = 0     # slot of the next pair
        self.gamma = 1.0
        self.g_prev: torch.Tensor | None = None
        self.step_prev: torch.Tensor | None = None

    def _push(self, s: torch.Tensor, y: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor | None:
        """Store a pair; returns the history's products with ``g`` (``[S g; Y g]``, 2m) when ``g`` is given."""
        p, m = self.head, self.m
        self.S[p] = s
        self.Y[p] = y
        self.head = (p + 1) % m
        self.k = min(self.k + 1, m)
        k = self.k  # slots 0..k-1 are filled (all of them once the history is full): touch only those rows
        vecs = torch.stack([y, s] if g is None else [y, s, g], 1)
        ps = (self.S[:k] @ vecs).double()         # (k, 2 or 3)
        py = (self.Y[:k] @ vecs).double()
        self.SY[:k, p] = ps[:, 0]                 # s_i . y_new
        self.SY[p, :k] = py[:, 1]                 # s_new . y_j
        self.YY[:k, p] = py[:, 0]
        self.YY[p, :k] = py[:, 0]
        if g is None:
            return None
        out = torch.zeros(2 * m, dtype=torch.float64, device=g.device)
        out[:k], out[m:m + k] = ps[:, 2], py[:, 2]
        return out

    def _order(self) -> torch.Tensor:
        return torch.tensor([(self.head - self.k + i) % self.m for i in range(self.k)], device=self.H.device)

    def _apply_inverse_hessian(self, g: torch.Tensor, hg: torch.Tensor | None = None) -> torch.Tensor:
        m = self.m
        k = self.k
        if hg is None:
            hg = torch.cat([(self.S[:k] @ g).double(), torch.zeros(m - k, dtype=torch.float64, device=g.device),
                            (self.Y[:k] @ g).double(), torch.zeros(m - k, dtype=torch.float64, device=g.device)])
        idx = self._order()
        a, b = hg[:m][idx], hg[m:][idx]
        sy = self.SY[idx][:, idx]
        R = torch.triu(sy)
        D = torch.diagonal(sy)
        yy = self.YY[idx][:, idx]
        gam = self.gamma
        p = torch.linalg.solve_triangular(R, a[:, None], upper=True)[:, 0]
        q = torch.linalg.solve_triangular(R.T, (D * p + gam * (yy @ p) - gam * b)[:, None], upper=False)[:, 0]
        coef = torch.zeros(2 * m, dtype=torch.float64, device=g.device)
        coef[idx] = q
        coef[m + idx] = -gam * p
        coef = coef.to(g.dtype)
        return gam * g + coef[:k] @ self.S[:k] + coef[m:m + k] @ self.Y[:k]

    def step(self, g: torch.Tensor) -> torch.Tensor:
        """Given the gradient at the current point, return the update to add to it."""
        g = g.reshape(-1)
        if self.g_prev is None:
            d = -g
            t = min(1.0, 1.0 / max(float(g.abs().sum()), 1e-30)) * self.lr
        else:
            y = g - self.g_prev
            s = self.step_prev
            ys = float(y @ s)
            hg = None
            if ys > 1e-10:
                hg = self._push(s, y, g)
                self.gamma = ys / float(y @ y)
            d = -self._apply_inverse_hessian(g, hg) if self.k else -g
            t = self.lr
        self.g_prev = g.clone()
        self.step_prev = d * t
        return self.step_prev

    def state_dict(self) -> dict:
        k = self.k
        idx = self._order() if k else torch.zeros(0, dtype=torch.long)
        return {"S": self.S[idx].cpu(), "Y": self.Y[idx].cpu(), "gamma": self.gamma, "lr": self.lr,
                "g_prev": None if self.g_prev is None else self.g_prev.cpu(),
                "step_prev": None if self.step_prev is None else self.step_prev.cpu()}

    def load_state_dict(self, state: dict) -> None:
        S, Y = state["S"].to(self.S), state["Y"].to(self.Y)
        self.k, self.head = 0, 0
        self.H.zero_(), self.SY.zero_(), self.YY.zero_()
        for s, y in zip(S[-self.m:], Y[-self.m:]):
            self._push(s, y)
        self.gamma, self.lr = float(state["gamma"]), float(state["lr"])
        dev = self.H.device
        self.g_prev = None if state["g_prev"] is None else state["g_prev"].to(dev)
        self.step_prev = None if state["step_prev"] is None else state["step_prev"].to(dev)


def _evaluate(criterion: Criterion, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        total, terms = criterion(x)
        # autograd.grad returns a fresh gradient, so nothing accumulates across evaluations (no zero_grad needed)
        (g,) = torch.autograd.grad(total, x)
    return total.detach(), {k: v.detach() for k, v in terms.items()}, g


def optimize(image: torch.Tensor, criterion: Criterion, *, optimizer: str = "lbfgs", steps: int = 500,
             lr: float | None = None, history: int | None = None, tol: float = 1e-6, patience: int = 5,
             clamp: tuple[float, float] | None = (0.0, 1.0), callback: Callable[[Progress], bool | None] | None = None,
             state: dict | None = None, scale: int = 1, n_scales: int = 1) -> torch.Tensor:
    """Minimise ``criterion`` over an image.

    Parameters
    ----------
    image : the starting point, any shape (typically ``(1, 3, H, W)``); not modified.
    criterion : ``x -> (total, terms)``, e.g. a :class:`stylekit.losses.StyleTransferLoss`.
    optimizer : ``"lbfgs"`` (default) or ``"adam"``.
    steps : number of iterations (one criterion evaluation each).
    lr : step size; default 1.0 for L-BFGS and 0.02 for Adam (with cosine decay to 5% over ``steps``).
    history : L-BFGS history length; default :func:`auto_history` (100, fewer for very large images).
    tol, patience : stop when the relative loss change stays below ``tol`` for ``patience`` steps.
    clamp : range applied after each Adam step and to Adam's result. L-BFGS is never clamped: a projection
        breaks its curvature pairs, and values slightly out of range are part of its path to a low loss;
        clamp when you save (the pipelines do).
    callback : called with a :class:`Progress` after each evaluation; returning True stops the run.
    state : a state from :attr:`OptimizationInterrupted.state` to resume from (same criterion and settings).

    Returns
    -------
    The best iterate seen (lowest loss), detached (clamped for Adam only).

    Raises
    ------
    OptimizationInterrupted
        on Ctrl-C, carrying ``best`` and a ``state`` that :func:`optimize` resumes from.

    Notes
    -----
    A NaN or infinite loss or gradient makes L-BFGS go back to the best iterate and restart with half the
    step size (at most 3 times, each with a warning); after that, or with Adam, the run stops with a warning
    and returns the last finite best.
    The loop is deterministic on the CPU: it draws no random numbers.

    Examples
    --------
    >>> import torch
    >>> target = torch.full((1, 3, 4, 4), 0.25)
    >>> def criterion(x):
    ...     d = (x - target).pow(2).mean()
    ...     return d, {"mse": d}
    >>> out = optimize(torch.zeros(1, 3, 4, 4), criterion, steps=20)
    >>> float((out - target).abs().max()) < 1e-3
    True
    """
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if int(steps) < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    run = _Run(image, optimizer, steps, lr, history, clamp)
    start = run.restore(state) if state is not None else 0
    t0 = time.perf_counter()
    prev, calm = None, 0
    step = start
    try:
        for step in range(start, steps):
            loss, terms, g = _evaluate(criterion, run.x)
            lf = float(loss)
            if not math.isfinite(lf) or not bool(torch.isfinite(g).all()):
                if run.restart(step):
                    prev, calm = None, 0
                    continue
                break
            if lf < run.best_loss:
                run.best_loss, run.best = lf, run.x.detach().clone()
            if callback is not None and callback(Progress(step + 1, steps, lf, {k: float(v) for k, v in terms.items()},
                                                          time.perf_counter() - t0, run.x.detach(), scale, n_scales)):
                break
            if prev is not None and abs(prev - lf) <= tol * max(abs(prev), 1e-30):
                calm += 1
                if calm >= patience:
                    break
            else:
                calm = 0
            prev = lf
            if step == steps - 1:
                break  # the final evaluation needs no update after it
            run.update(g)
    except KeyboardInterrupt:
        raise OptimizationInterrupted(run.result(), run.snapshot(step)) from None
    return run.result()


class _Run:
    """The iterate, the best iterate and the optimiser of one :func:`optimize` call."""

    def __init__(self, image: torch.Tensor, optimizer: str, steps: int, lr: float | None, history: int | None,
                 clamp: tuple[float, float] | None) -> None:
        self.kind, self.clamp, self.steps = optimizer, clamp, steps
        self.x = image.detach().clone()
        self.n = self.x.numel()
        self.best, self.best_loss = self.x.clone(), math.inf
        self.restarts = 0
        if optimizer == "lbfgs":
            self.opt = LBFGS(self.n, history=history or auto_history(self.n), lr=1.0 if lr is None else lr,
                             device=self.x.device)
        else:
            lr0 = 0.02 if lr is None else lr
            self.x.requires_grad_(True)
            self.opt = torch.optim.Adam([self.x], lr=lr0)
            self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=max(1, steps), eta_min=lr0 * 0.05)

    def restore(self, state: dict) -> int:
        """Continue from a :meth:`snapshot`; returns the step to start at. A state that does not fit this run
        (shapes, kind of optimiser, a step out of range, non-finite values) is a :class:`ConfigError`."""
        self._check_state(state)
        self.x.data.copy_(state["x"].to(self.x))
        self.best = state["best"].to(self.x)
        self.best_loss = float(state["best_loss"])
        self.opt.load_state_dict(state["optimizer"])
        if self.kind == "adam":
            self.sched.load_state_dict(state["scheduler"])
        return int(state["step"])

    def _check_state(self, state: dict) -> None:
        bad = ConfigError("the resume state does not match this run (a different size, optimiser or settings)")
        x, best, step = state.get("x"), state.get("best"), state.get("step")
        if not (torch.is_tensor(x) and torch.is_tensor(best) and tuple(x.shape) == tuple(self.x.shape)
                and tuple(best.shape) == tuple(self.x.shape) and x.is_floating_point() and best.is_floating_point()):
            raise bad
        if not (isinstance(step, int) and 0 <= step <= self.steps and state.get("kind", self.kind) == self.kind
                and isinstance(state.get("optimizer"), dict)):
            raise bad
        if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(best).all())):
            raise ConfigError("the resume state holds non-finite values (a damaged checkpoint)")

    def snapshot(self, step: int) -> dict:
        s = {"x": self.x.detach().cpu().clone(), "best": self.best.cpu(), "best_loss": self.best_loss, "step": step,
             "optimizer": self.opt.state_dict(), "kind": self.kind}
        if self.kind == "adam":
            s["scheduler"] = self.sched.state_dict()
        return s

    def restart(self, step: int) -> bool:
        """After a non-finite loss or gradient: True when L-BFGS starts again from the best iterate."""
        if self.kind == "lbfgs" and self.restarts < 3 and math.isfinite(self.best_loss):
            # L-BFGS here has no line search: a step can overshoot into a region where the objective is not
            # finite. Go back to the best iterate and start again with half the step size.
            self.restarts += 1
            self.opt = LBFGS(self.n, history=self.opt.m, lr=self.opt.lr * 0.5, device=self.x.device)
            self.x.data.copy_(self.best)
            warnings.warn(f"loss or gradient became non-finite at step {step + 1}; restarting L-BFGS "
                          f"from the best iterate with step size {self.opt.lr:g}", RuntimeWarning, stacklevel=3)
            return True
        warnings.warn(f"loss or gradient became non-finite at step {step + 1}; "
                      "returning the last finite iterate", RuntimeWarning, stacklevel=3)
        return False

    def update(self, g: torch.Tensor) -> None:
        if self.kind == "lbfgs":
            self.x.add_(self.opt.step(g).view_as(self.x))
            return
        self.x.grad = g
        self.opt.step()
        self.sched.step()
        if self.clamp is not None:
            with torch.no_grad():
                self.x.clamp_(*self.clamp)

    def result(self) -> torch.Tensor:
        return _finish(self.best, self.clamp if self.kind != "lbfgs" else None)


def _finish(x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    x = x.detach()
    return x.clamp(*clamp) if clamp is not None else x


def pyramid_sizes(size: int, *, scales: int, min_edge: int = 128, ratio: float | None = None) -> list[int]:
    """Long-edge sizes for a coarse-to-fine run ending at ``size``.

    ``scales`` levels, geometric between ``max(min_edge, ...)`` and ``size`` (or ``size * ratio ** i`` when
    ``ratio`` is given). Sizes are strictly increasing; fewer levels are returned when ``size`` is too
    close to ``min_edge`` to fit them.

    Examples
    --------
    >>> pyramid_sizes(512, scales=3, min_edge=128)
    [128, 256, 512]
    """
    if scales < 1:
        raise ConfigError(f"the number of scales must be >= 1, got {scales}")
    if scales == 1 or size <= min_edge:
        return [int(size)]
    if ratio is None:
        ratio = (min_edge / size) ** (1 / (scales - 1))
    sizes = sorted({int(round(size * ratio ** i)) for i in range(scales)} | {int(size)})
    return [s for s in sizes if s >= min(min_edge, size)]


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def coarse_to_fine(init: torch.Tensor, make_criterion: Callable[[tuple[int, int]], Criterion],
                   shapes: Sequence[tuple[int, int]], *, steps: int | Sequence[int],
                   callback: Callable[[Progress], bool | None] | None = None, state: dict | None = None,
                   **kwargs) -> torch.Tensor:
    """Run :func:`optimize` at each ``(H, W)`` in ``shapes`` (coarse to fine).

    The first scale starts from ``init`` resized to its shape; each later scale starts from the previous
    result upsampled (bicubic). ``make_criterion((H, W))`` builds the criterion for one scale (targets at
    that size). ``steps`` is one count for every scale or one per scale; other keyword arguments go to
    :func:`optimize`.

    On Ctrl-C, :class:`OptimizationInterrupted` is raised with ``state["scale"]`` (0-based) added; passing
    that ``state`` back resumes at the same scale and step, giving the result of an uninterrupted run.

    Examples
    --------
    >>> import torch
    >>> def make_criterion(hw):
    ...     target = torch.full((1, 3, *hw), 0.25)
    ...     return lambda x: ((x - target).pow(2).mean(), {})
    >>> out = coarse_to_fine(torch.zeros(1, 3, 8, 8), make_criterion, [(4, 4), (8, 8)], steps=20)
    >>> out.shape, float((out - 0.25).abs().max()) < 1e-3
    (torch.Size([1, 3, 8, 8]), True)
    """
    per = [int(steps)] * len(shapes) if isinstance(steps, int) else [int(s) for s in steps]
    if len(per) != len(shapes):
        raise ConfigError(f"got {len(per)} step counts for {len(shapes)} scales")
    first = 0
    if state is not None:
        first = int(state["scale"])
        if not 0 <= first < len(shapes) or tuple(state["x"].shape[-2:]) != tuple(shapes[first]):
            raise ConfigError("the resume state does not match these scales (different size or settings)")
    x = init
    for i, (hw, n) in enumerate(zip(shapes, per)):
        if i < first:
            continue
        x = _resize(x, hw)
        try:
            x = optimize(x, make_criterion(hw), steps=n, callback=callback, scale=i + 1, n_scales=len(shapes),
                         state=state if i == first else None, **kwargs)
        except OptimizationInterrupted as e:
            e.state["scale"] = i
            raise
    return x
