"""The Deep Image Prior fitting loop: Adam on one degraded image, output averaging, PSNR history.

Imported as ``helpers.dip.fit``; kept in its own module so that :mod:`helpers.dip` (the network
and its input) stays short.

References
----------
Ulyanov, D., Vedaldi, A., Lempitsky, V. "Deep Image Prior." CVPR 2018.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from . import dip_ops

logger = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` returns. Images are ``(1, C, H, W)`` CPU tensors.

    Attributes
    ----------
    output, average : Tensor
        The last raw output and the exponential average of outputs.
    loss : list of float
        Data term per iteration.
    psnr, psnr_average : list of float
        PSNR of the raw and averaged outputs against ``clean`` per iteration (empty without it).
    best_iteration, best_psnr : int, float
        Iteration (1-based) and PSNR of the best averaged output (``-1``, ``nan`` without ``clean``).
    best : Tensor or None
        The best averaged output.
    snapshots : list of (int, Tensor)
        ``(iteration, averaged output)`` every ``snapshot_every`` iterations.
    seconds : float
        Wall time of the loop.
    """

    output: torch.Tensor
    average: torch.Tensor
    loss: list[float]
    psnr: list[float] = field(default_factory=list)
    psnr_average: list[float] = field(default_factory=list)
    best_iteration: int = -1
    best_psnr: float = math.nan
    best: torch.Tensor | None = None
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    seconds: float = 0.0


def _psnr_t(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """PSNR in dB as a 0-d tensor (no device synchronisation)."""
    return -10.0 * torch.log10(torch.mean((x - ref) ** 2).clamp_min(1e-12))


def fit(
    net: nn.Module,
    z: torch.Tensor,
    target: torch.Tensor,
    *,
    task: str = "denoise",
    mask: torch.Tensor | None = None,
    factor: int | None = None,
    clean: torch.Tensor | None = None,
    iterations: int = 3000,
    lr: float = 0.01,
    reg_noise_std: float = 0.0,
    ema: float = 0.99,
    snapshot_every: int = 0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit ``net(z)`` to a degraded image with Adam: the Deep Image Prior loop.

    Each iteration: ``x = net(z + N(0, reg_noise_std²))``, loss = data term, Adam step,
    ``average = ema · average + (1 − ema) · x``.

    Parameters
    ----------
    net : nn.Module
        E.g. :class:`SkipNet`; trained in place (keep it in train mode, as the paper does).
    z : Tensor ``(1, C_in, H, W)``
        Fixed input (:func:`make_input`).
    target : Tensor
        ``x₀``: ``(1, C, H, W)``, or ``(1, C, H/factor, W/factor)`` for super-resolution.
    task : str
        ``"denoise"``, ``"super_resolution"`` or ``"inpaint"`` (see :func:`helpers.dip_ops.data_term`).
    mask : Tensor ``(1, 1 or C, H, W)``, optional
        Inpainting mask, 1 = known pixel.
    factor : int, optional
        Super-resolution factor (Lanczos downsampler, :class:`helpers.dip_ops.LanczosDownsampler`).
    clean : Tensor ``(1, C, H, W)``, optional
        Ground truth: PSNR of raw and averaged outputs is recorded every iteration.
    iterations, lr, reg_noise_std, ema : int, float, float, float
        Number of Adam steps, learning rate, jitter of ``z``, decay of the output average.
    snapshot_every : int
        Keep the averaged output every this many iterations (0: none).
    generator : torch.Generator, optional
        Seeds the jitter of ``z``.
    device : str or torch.device, optional
        Default: the device of the network's parameters.
    progress : bool
        Show a ``tqdm.auto`` progress bar.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        For shapes that do not fit together, a mask unlike the image, or a factor that does not
        divide the output size.

    Examples
    --------
    >>> from helpers.dip import SkipNet, make_input
    >>> net = SkipNet(8, 1, scales=2, channels=8, seed=0)
    >>> z = make_input(8, (16, 16), generator=torch.Generator().manual_seed(0))
    >>> res = fit(net, z, torch.rand(1, 1, 16, 16), iterations=5, progress=False)
    >>> len(res.loss)
    5
    """
    if not isinstance(z, torch.Tensor) or z.ndim != 4 or z.shape[0] != 1:
        raise ValueError(
            f"z must be a (1, C, H, W) tensor, got {getattr(z, 'shape', type(z).__name__)}"
        )
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    out_shape = (1, getattr(net, "out_channels", target.shape[1]), *z.shape[-2:])
    dip_ops.check_task(task, target, out_shape=out_shape, mask=mask, factor=factor)
    if clean is not None and tuple(clean.shape) != out_shape:
        raise ValueError(
            f"clean image is {tuple(clean.shape)}, expected the output shape {out_shape}"
        )

    net = net.to(device).train()
    z, target = z.to(device), target.to(device)
    mask = mask.to(device) if mask is not None else None
    clean = clean.to(device) if clean is not None else None
    down = (
        dip_ops.LanczosDownsampler(factor, channels=target.shape[1]).to(device)
        if task == "super_resolution"
        else None
    )
    seed = (
        int(torch.randint(0, 2**62, (1,), generator=generator).item())
        if generator is not None
        else 0
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = torch.full((iterations, 3), math.nan, device=device)  # loss, psnr, psnr of average
    avg = best = None
    best_value = torch.tensor(-math.inf, device=device)
    best_step = torch.tensor(0, device=device)
    snapshots: list[tuple[int, torch.Tensor]] = []
    bar = tqdm(range(iterations), disable=not progress, desc=f"DIP {task}", leave=False)
    start = time.perf_counter()
    for i in bar:
        z_in = z
        if reg_noise_std > 0:
            z_in = z + reg_noise_std * torch.randn(z.shape, generator=gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        x = net(z_in)
        loss = dip_ops.data_term(x, target, task, mask=mask, downsampler=down)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x = x.detach()
            avg = x.clone() if avg is None else avg.mul_(ema).add_(x, alpha=1 - ema)
            history[i, 0] = loss.detach()
            if clean is not None:
                history[i, 1] = _psnr_t(x, clean)
                p = _psnr_t(avg, clean)
                history[i, 2] = p
                better = p > best_value
                best_value = torch.where(better, p, best_value)
                best_step = torch.where(better, torch.tensor(i + 1, device=device), best_step)
                best = avg.clone() if best is None else torch.where(better, avg, best)
        if snapshot_every and (i + 1) % snapshot_every == 0:
            snapshots.append((i + 1, avg.detach().cpu()))
        if progress and (i % 50 == 0 or i == iterations - 1):
            bar.set_postfix(loss=f"{loss.item():.2e}")
    seconds = time.perf_counter() - start
    hist = history.cpu()
    result = FitResult(
        output=x.cpu(),
        average=avg.cpu(),
        loss=hist[:, 0].tolist(),
        snapshots=snapshots,
        seconds=seconds,
    )
    if clean is not None:
        result.psnr, result.psnr_average = hist[:, 1].tolist(), hist[:, 2].tolist()
        result.best_iteration, result.best_psnr, result.best = (
            int(best_step),
            float(best_value),
            best.cpu(),
        )
    logger.info("DIP %s: %d iterations in %.1f s", task, iterations, seconds)
    return result
