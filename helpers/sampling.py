"""The whole reverse process in one call: DDPM or DDIM sampling with classifier-free guidance.

Notebook 03 writes this loop out itself; :func:`sample` is the convenience version the later
notebooks use. Also reachable as ``helpers.diffusion.sample``.

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
.. [3] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from .diffusion import ddim_step, ddim_timesteps, ddpm_step
from .schedules import Schedule
from .unet import null_condition

__all__ = ["guided_eps", "sample"]


def guided_eps(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, *, y=None, cond=None, guidance: float = 0.0
) -> torch.Tensor:
    """ε̂ with classifier-free guidance: (1 + w) ε_θ(x, c) − w ε_θ(x, ∅) (Ho & Salimans).

    With ``guidance == 0`` or no condition this is one plain call. Otherwise the conditional and
    unconditional halves go through the model as one batch of 2B.
    """
    if guidance == 0 or (y is None and cond is None):
        return model(x, t, y=y, cond=cond)
    y_null, cond_null = null_condition(model, y, cond)
    cat = lambda a, b: None if a is None else torch.cat([a, b])  # noqa: E731
    eps_c, eps_u = model(
        torch.cat([x, x]), torch.cat([t, t]), y=cat(y, y_null), cond=cat(cond, cond_null)
    ).chunk(2)
    return (1 + guidance) * eps_c - guidance * eps_u


@torch.no_grad()
def sample(
    model: nn.Module,
    shape: tuple[int, ...],
    *,
    schedule: Schedule,
    steps: int | None = None,
    sampler: str = "ddim",
    eta: float = 0.0,
    y: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    guidance: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    clip_x0: bool = True,
    variance: str = "posterior",
    spacing: str = "leading",
    progress: bool = False,
    return_trajectory: bool = False,
):
    """Draw samples with DDPM (ancestral, every step) or DDIM (a subset of steps).

    Parameters
    ----------
    model : nn.Module
        ``model(x, t, y=None, cond=None) -> ε̂`` (e.g. :class:`helpers.unet.UNet`).
    shape : tuple
        ``(B, C, H, W)`` of the result.
    schedule : Schedule
    steps : int, optional
        DDIM steps (default 50); for DDPM it must be ``None`` or ``schedule.T``.
    sampler : {"ddim", "ddpm"}
    eta : float
        DDIM's η (0: deterministic).
    y : Tensor ``(B,)`` long, optional
        Class labels. ``cond`` : Tensor ``(B, D)``, optional, a conditioning vector.
    guidance : float
        Classifier-free guidance weight w; ε̂ = (1 + w) ε_c − w ε_u. 0 means no guidance.
    seed : int
        Seed of the initial noise and of every noise draw (a CPU ``torch.Generator``).
    device : optional
        Default: the model's device.
    clip_x0 : bool
        Clamp x̂₀ to ``[-1, 1]`` at every step.
    variance : {"posterior", "beta"}
        DDPM only. ``spacing`` : {"leading", "trailing"}, DDIM only (see :func:`ddim_timesteps`).
    progress : bool
        Show a progress bar.
    return_trajectory : bool
        Also return the list of ``(t, x_t)`` pairs on the CPU, starting with the pure noise
        (t = T) and ending with the sample (t = −1 for DDIM, 0 → result for DDPM).

    Returns
    -------
    Tensor ``(B, C, H, W)`` in ``[-1, 1]`` (approximately), or ``(samples, trajectory)``.

    Examples
    --------
    >>> from helpers import unet
    >>> net = unet.UNet(1, base_channels=8, channel_mults=(1,), attn_resolutions=())
    >>> s = Schedule.make("linear", T=20)
    >>> sample(net, (2, 1, 8, 8), schedule=s, steps=5).shape
    torch.Size([2, 1, 8, 8])
    """
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
    if len(shape) < 3:
        raise ValueError(f"shape must be (B, C, H, W), got {shape}")
    if sampler == "ddpm" and steps not in (None, schedule.T):
        raise ValueError(
            f"DDPM visits every step: steps must be None or T={schedule.T}, got {steps}"
        )
    for name, c in (("y", y), ("cond", cond)):
        if c is not None and c.shape[0] != shape[0]:
            raise ValueError(f"{name} has {c.shape[0]} rows but shape asks for {shape[0]} samples")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    schedule = schedule.to(device)
    y = y.to(device) if y is not None else None
    cond = cond.to(device) if cond is not None else None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen).to(device)
    ts = (
        torch.arange(schedule.T - 1, -1, -1)
        if sampler == "ddpm"
        else ddim_timesteps(schedule.T, steps or 50, spacing=spacing)
    )
    t_prevs = torch.cat([ts[1:], torch.tensor([-1])])
    trajectory = [(schedule.T, x.cpu())] if return_trajectory else None
    was_training = model.training
    model.eval()
    for t, t_prev in tqdm(
        list(zip(ts.tolist(), t_prevs.tolist(), strict=True)), disable=not progress, desc=sampler
    ):
        tb = torch.full((shape[0],), t, device=device, dtype=torch.long)
        eps = guided_eps(model, x, tb, y=y, cond=cond, guidance=guidance)
        z = (
            torch.randn(shape, generator=gen).to(device)
            if (sampler == "ddpm" and t > 0) or eta > 0
            else None
        )
        if sampler == "ddpm":
            x = ddpm_step(
                eps,
                tb,
                x,
                schedule,
                noise=z if z is not None else torch.zeros_like(x),
                variance=variance,
                clip_x0=clip_x0,
            )
        else:
            x = ddim_step(eps, tb, t_prev, x, schedule, eta=eta, noise=z, clip_x0=clip_x0)
        if trajectory is not None:
            trajectory.append((t_prev, x.cpu()))
    model.train(was_training)
    return (x, trajectory) if return_trajectory else x
