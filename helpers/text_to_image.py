"""Text-to-image latent diffusion, Stable Diffusion's way, from diffusers' and transformers' parts.

Stable Diffusion is four components and a loop: a tokenizer and a text encoder (CLIP) turn the
prompt into token states; a ``UNet2DConditionModel`` predicts the noise in a *latent* (4 × 64 × 64
for a 512² image), cross-attending to the token states; a DDIM scheduler steps the latent from
noise towards data with classifier-free guidance against the empty prompt; the autoencoder's
decoder turns the final latent into pixels (:mod:`helpers.latent`). This module builds the same
components at course scale:

* :class:`LatentDiffusionConfig` and :func:`make_unet`: a small ``UNet2DConditionModel``;
* :func:`make_scheduler`: Stable Diffusion v1's DDIM scheduler configuration (scaled-linear β
  from 0.00085 to 0.012, ``steps_offset=1``, ``set_alpha_to_one=False``), and :func:`schedule_of`,
  the same schedule as a :class:`helpers.diffusion.Schedule` for the kit's steps;
* :class:`CaptionTableUNet`: the U-Net behind the kit's ``model(x, t, y)`` interface, with ``y``
  indexing precomputed token states of the training captions (the text encoder is frozen, as in
  Stable Diffusion) and the null label meaning the empty caption, so that
  :func:`helpers.diffusion_training.train` trains it with 10 % empty-caption dropout;
* :func:`assemble_pipeline`: a diffusers ``StableDiffusionPipeline`` from these components — the
  notebook writes the sampling loop out and checks it equals this pipeline;
* :func:`find_stable_diffusion` / :func:`load_stable_diffusion`: real Stable Diffusion weights
  from the local Hugging Face cache, never downloaded unless asked.

References
----------
.. [1] R. Rombach, A. Blattmann, D. Lorenz, P. Esser, B. Ommer, "High-Resolution Image Synthesis
   with Latent Diffusion Models", CVPR 2022.
.. [2] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.
.. [3] J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.

Examples
--------
>>> import torch
>>> from helpers import text_to_image as t2i
>>> cfg = t2i.LatentDiffusionConfig.preset("smoke")
>>> unet = t2i.make_unet(cfg, in_channels=4, sample_size=4, cross_attention_dim=16, seed=0)
>>> unet(torch.zeros(2, 4, 4, 4), 10, encoder_hidden_states=torch.zeros(2, 8, 16)).sample.shape
torch.Size([2, 4, 4, 4])
>>> t2i.make_scheduler(1000).config.steps_offset
1
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .diffusion import Schedule
from .runtime import Presets, seeded
from .unet import check_labels

logger = logging.getLogger(__name__)

__all__ = [
    "STABLE_DIFFUSION_REPOS",
    "CaptionTableUNet",
    "LatentDiffusionConfig",
    "assemble_pipeline",
    "find_stable_diffusion",
    "load_stable_diffusion",
    "make_scheduler",
    "make_unet",
    "sample",
    "schedule_of",
    "timesteps",
]


@dataclass(frozen=True)
class LatentDiffusionConfig(Presets):
    """The text-conditioned U-Net and its training.

    Attributes
    ----------
    channels : tuple of int
        ``block_out_channels`` of the ``UNet2DConditionModel``; every level but the last has
        cross-attention (``CrossAttnDownBlock2D``), as Stable Diffusion's.
    layers_per_block : int
    head_dim : int
        Channels per attention head.
    T : int
        Diffusion steps of the training schedule.
    steps, batch_size, lr, ema_decay : int, int, float, float
        Training with :func:`helpers.diffusion_training.train`.
    cond_drop : float
        Share of captions replaced by the empty caption (10 % in Stable Diffusion's fine-tuning
        and in Ho & Salimans).
    sample_steps : int
        DDIM steps when sampling.
    """

    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    head_dim: int = 8
    T: int = 1000
    steps: int = 800
    batch_size: int = 32
    lr: float = 1e-3
    ema_decay: float = 0.999
    cond_drop: float = 0.1
    sample_steps: int = 20

    def __post_init__(self) -> None:
        for name in ("layers_per_block", "head_dim", "T", "steps", "batch_size", "sample_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"LatentDiffusionConfig.{name} must be a positive int, got {v!r}")
        if len(self.channels) < 2 or not all(isinstance(c, int) and c >= 1 for c in self.channels):
            raise ValueError(
                f"LatentDiffusionConfig.channels must be ≥ 2 positive ints, got {self.channels!r}"
            )
        if any(c % self.head_dim for c in self.channels):
            raise ValueError(
                f"every entry of channels {self.channels} must be divisible by head_dim={self.head_dim}"
            )
        if not 0 <= self.cond_drop < 1 or not 0 <= self.ema_decay < 1 or not self.lr > 0:
            raise ValueError(
                f"need 0 ≤ cond_drop < 1, 0 ≤ ema_decay < 1, lr > 0; got {self.cond_drop}, "
                f"{self.ema_decay}, {self.lr}"
            )
        if self.sample_steps > self.T:
            raise ValueError(f"sample_steps={self.sample_steps} exceeds T={self.T}")

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("steps", "sample_steps")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, LatentDiffusionConfig]:
        """One preset per profile (use ``LatentDiffusionConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(channels=(16, 32), head_dim=8, steps=6, batch_size=16, sample_steps=4),
            "laptop": cls(),
            "gpu": cls(channels=(128, 256, 256), head_dim=32, steps=10000, batch_size=256,
                       lr=2e-4, ema_decay=0.9995, sample_steps=50),
        }  # fmt: skip


def _groups(channels: tuple[int, ...]) -> int:
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(c % g == 0 for c in channels))


def make_unet(
    config: LatentDiffusionConfig,
    *,
    in_channels: int,
    sample_size: int,
    cross_attention_dim: int,
    seed: int | None = None,
) -> Any:
    """A diffusers ``UNet2DConditionModel`` of ``config`` (Stable Diffusion's block layout).

    Parameters
    ----------
    config : LatentDiffusionConfig
    in_channels : int
        4 for Stable Diffusion's latents, 3 for RGB pixels (the cost comparison).
    sample_size : int
        Side of its input (the latent's side); divisible by ``2**(len(channels) − 1)``.
    cross_attention_dim : int
        Length of a token state of the text encoder.
    seed : int, optional
        Initialise the weights from this seed without touching the global random state.
    """
    from diffusers import UNet2DConditionModel

    levels = len(config.channels)
    if sample_size % 2 ** (levels - 1):
        raise ValueError(
            f"sample_size={sample_size} is not divisible by 2 ** (levels − 1) = {2 ** (levels - 1)}"
        )
    with seeded(seed):
        return UNet2DConditionModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(config.channels),
            layers_per_block=config.layers_per_block,
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=config.head_dim,
            norm_num_groups=_groups(tuple(config.channels)),
        )


def make_scheduler(T: int = 1000) -> Any:
    """Stable Diffusion v1's ``DDIMScheduler`` configuration with ``T`` training steps.

    Scaled-linear β (√β evenly spaced from √0.00085 to √0.012), ε-prediction, no clipping (latents
    have no fixed range), ``steps_offset=1`` and ``set_alpha_to_one=False``: the timesteps of
    ``n`` steps are ``k·T/n + 1``, and the last step lands on ᾱ of t = 0 rather than 1.
    """
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=T,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def schedule_of(scheduler: Any) -> Schedule:
    """The schedule of a diffusers scheduler as a :class:`helpers.diffusion.Schedule`."""
    return Schedule.from_betas(scheduler.betas, kind=str(scheduler.config.beta_schedule))


def timesteps(scheduler: Any, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The DDIM timesteps ``t`` and the ``t_prev`` each step lands on, as the scheduler visits them.

    Leading spacing: ``t = k·(T // steps) + steps_offset`` for k = steps − 1 … 0; ``t_prev = t −
    T // steps``; a ``t_prev`` below 0 is the end of the chain: −1 (ᾱ = 1, for
    :func:`helpers.diffusion.ddim_step`) with ``set_alpha_to_one``, else 0 (ᾱ_0).

    Returns
    -------
    (t, t_prev) : two Tensors ``(steps,)`` int64
    """
    from .diffusion import ddim_timesteps

    cfg = scheduler.config
    if cfg.timestep_spacing != "leading":
        raise ValueError(
            f"only 'leading' timestep spacing is written out, got {cfg.timestep_spacing!r}"
        )
    T = int(cfg.num_train_timesteps)
    t = ddim_timesteps(T, steps) + int(cfg.steps_offset)
    t_prev = t - T // steps
    end = -1 if cfg.set_alpha_to_one else 0
    return t, torch.where(t_prev < 0, torch.full_like(t_prev, end), t_prev)


class CaptionTableUNet(nn.Module):
    """A ``UNet2DConditionModel`` called as ``model(x, t, y)``, ``y`` indexing caption states.

    The kit's training loop (:func:`helpers.diffusion_training.train`) conditions on labels and
    drops a share of them to the *null* label ``num_classes``. Here label ``k < num_classes``
    stands for training caption ``k``, whose token states (from the frozen text encoder) are row
    ``k`` of ``states``, and the null label for the empty caption, the last row: so condition
    dropping is empty-caption dropping, as Stable Diffusion trains for guidance.

    Parameters
    ----------
    unet : diffusers ``UNet2DConditionModel``
    states : Tensor ``(K + 1, context, D)``
        Token states of the K training captions, then of the empty caption. Kept as a
        non-persistent buffer: checkpoints hold the U-Net's weights only.
    """

    def __init__(self, unet: nn.Module, states: torch.Tensor):
        super().__init__()
        if states.ndim != 3 or states.shape[0] < 2:
            raise ValueError(
                f"states must be (K + 1, context, D) with K ≥ 1 captions, got {tuple(states.shape)}"
            )
        if states.shape[-1] != unet.config.cross_attention_dim:
            raise ValueError(
                f"token states have {states.shape[-1]} channels, the U-Net cross-attends to "
                f"{unet.config.cross_attention_dim}"
            )
        self.unet = unet
        self.register_buffer("states", states.detach().float(), persistent=False)
        self.num_classes = states.shape[0] - 1

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, cond=None
    ) -> torch.Tensor:
        if cond is not None:
            raise ValueError("CaptionTableUNet takes caption indices y, not a vector cond")
        channels = self.unet.config.in_channels
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"x must be (B, {channels}, h, w) latents, got {tuple(x.shape)}")
        if y is None:
            y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        check_labels(y, x.shape[0], self.num_classes)
        return self.unet(x, t, encoder_hidden_states=self.states[y]).sample


def assemble_pipeline(
    vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any
) -> Any:
    """A diffusers ``StableDiffusionPipeline`` from the given components (no safety checker).

    Its ``guidance_scale`` is the kit's ``1 + w``: ε = ε_u + s·(ε_c − ε_u) = (1 + w)ε_c − wε_u;
    ``guidance_scale ≤ 1`` runs the conditional model alone (w = 0).
    """
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def sample(
    pipe: Any,
    prompts: list[str] | str,
    *,
    guidance: float,
    steps: int,
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    output: str = "images",
) -> torch.Tensor:
    """Text → image with the components of ``pipe``: the loop a Stable Diffusion pipeline runs.

    Tokenize (:func:`helpers.text_conditioning.tokenize`: too long or empty prompts raise), encode
    the prompts and the empty prompt, draw the initial latent from ``seed``, then at every DDIM
    step (:func:`timesteps`) predict ε for the empty and the real prompt in one batch, combine
    them with :func:`helpers.diffusion.classifier_free_guidance` and take
    :func:`helpers.diffusion.ddim_step`; finally decode ``latents / scaling_factor``.

    Parameters
    ----------
    pipe : diffusers ``StableDiffusionPipeline`` (or any object with its ``tokenizer``,
        ``text_encoder``, ``unet``, ``vae`` and ``scheduler``)
    prompts : str or list of str
    guidance : float
        The kit's w (diffusers' ``guidance_scale = 1 + w``); 0 runs the conditional model alone.
    steps : int
        DDIM steps.
    seed : int
        Seed of the initial latent (a CPU generator, as the pipeline's).
    height, width : int, optional
        Image size in pixels (default: the U-Net's ``sample_size`` × the autoencoder's factor).
    output : {"images", "latents"}
        Images in ``[0, 1]`` ``(B, C, H, W)``, or the final latents (scaled).

    Returns
    -------
    Tensor on the CPU
    """
    from .diffusion import classifier_free_guidance, ddim_step
    from .text_conditioning import tokenize

    if output not in ("images", "latents"):
        raise ValueError(f"output must be 'images' or 'latents', got {output!r}")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    device = pipe.unet.device
    factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    h = (height or pipe.unet.config.sample_size * factor) // factor
    w = (width or pipe.unet.config.sample_size * factor) // factor
    ids = tokenize(pipe.tokenizer, prompts)
    empty = tokenize(pipe.tokenizer, [""] * len(prompts), allow_empty=True)
    context = pipe.text_encoder(torch.cat([empty, ids]).to(device))[0]  # (2B, L, D): ∅ then c
    schedule = schedule_of(pipe.scheduler).to(device)
    gen = torch.Generator().manual_seed(seed)
    shape = (len(prompts), pipe.unet.config.in_channels, h, w)
    x = torch.randn(shape, generator=gen).to(device, context.dtype)
    x = x * pipe.scheduler.init_noise_sigma
    for t, t_prev in zip(*(v.tolist() for v in timesteps(pipe.scheduler, steps)), strict=True):
        tb = torch.full((len(prompts),), t, device=device, dtype=torch.long)
        if guidance == 0:
            eps = pipe.unet(x, tb, encoder_hidden_states=context[len(prompts) :]).sample
        else:
            eps_u, eps_c = pipe.unet(
                torch.cat([x, x]), torch.cat([tb, tb]), encoder_hidden_states=context
            ).sample.chunk(2)
            eps = classifier_free_guidance(eps_c, eps_u, guidance)
        x = ddim_step(eps, tb, t_prev, x, schedule, clip_x0=False)
    if output == "latents":
        return x.float().cpu()
    images = pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample
    return ((images + 1) / 2).clamp(0, 1).float().cpu()


STABLE_DIFFUSION_REPOS: tuple[str, ...] = (
    "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "runwayml/stable-diffusion-v1-5",
    "CompVis/stable-diffusion-v1-4",
)
"""Hugging Face repositories of Stable Diffusion v1 that :func:`find_stable_diffusion` looks for."""


def find_stable_diffusion() -> str | None:
    """The first of :data:`STABLE_DIFFUSION_REPOS` whose pipeline is in the local Hugging Face
    cache (``~/.cache/huggingface/hub``, or ``$HF_HOME``), else ``None``. Never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers
        return None
    for repo in STABLE_DIFFUSION_REPOS:
        found = try_to_load_from_cache(repo, "model_index.json")
        if isinstance(found, str):
            return repo
    return None


def load_stable_diffusion(repo: str | None = None, *, allow_network: bool = False) -> Any:
    """Stable Diffusion's pipeline from the local cache (offline), or downloaded when allowed.

    Raises
    ------
    RuntimeError
        When the weights are not in the local cache and ``allow_network`` is False; the message
        says what to download and where it goes.
    """
    from diffusers import StableDiffusionPipeline

    repo = repo or find_stable_diffusion()
    if repo is None and not allow_network:
        raise RuntimeError(
            "no Stable Diffusion v1 weights in the local Hugging Face cache. On a machine with "
            'network, run `python -c "from diffusers import StableDiffusionPipeline; '
            f"StableDiffusionPipeline.from_pretrained('{STABLE_DIFFUSION_REPOS[0]}')\"` "
            "(about 5 GB, cached under ~/.cache/huggingface/hub, or $HF_HOME); the notebook then "
            "loads it offline"
        )
    pipe = StableDiffusionPipeline.from_pretrained(
        repo or STABLE_DIFFUSION_REPOS[0],
        local_files_only=not allow_network,
        safety_checker=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
