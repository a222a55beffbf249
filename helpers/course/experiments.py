"""The experiment budgets of the notebooks: sizes, steps and repeats per profile.

The settings of a *method* live with the method (``DIPConfig`` in :mod:`helpers.dip`,
``ViTConfig`` in :mod:`helpers.vit`, ``GANConfig`` in :mod:`helpers.gan`, ``SSLConfig`` in
:mod:`helpers.self_supervised`). What a *notebook* does with them — how many samples it draws,
how long it trains each model, how many seeds it repeats — is here, one frozen dataclass per
notebook experiment, each with a preset per profile (``Experiment.preset(run.profile)``) so that
the notebook fits its time budget: ``smoke`` ≤ 60 s, ``laptop`` ≤ 6 min on a 2-core CPU.

Examples
--------
>>> from helpers.course import experiments
>>> experiments.DDPMConfig.preset("smoke").train_steps
30
>>> experiments.MemorizationExperiment.preset("laptop", n_small=12).n_small
12
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from typing import ClassVar

from ..runtime import Presets

__all__ = [
    "CondConfig",
    "DDPMConfig",
    "MeasuringExperiment",
    "MemorizationExperiment",
    "RealNoiseExperiment",
    "SSLDiffusionExperiment",
    "TextToImageExperiment",
    "ViTExperiment",
]


def _positive(config: object, names: tuple[str, ...] | None = None) -> None:
    """Raise ValueError naming the first of ``names`` (default: every int field) that is < 1."""
    for f in fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if names is None and (not isinstance(value, int) or isinstance(value, bool)):
            continue
        if names is not None and f.name not in names:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"{type(config).__name__}.{f.name} must be a positive int, got {value!r}"
            )


def _divisible(config: object, names: tuple[str, ...], channel_mults: tuple[int, ...]) -> None:
    factor = 2 ** (len(channel_mults) - 1)
    for name in names:
        if getattr(config, name) % factor:
            raise ValueError(
                f"{type(config).__name__}.{name}={getattr(config, name)} is not divisible by "
                f"{factor} (2 ** (levels - 1) of channel_mults {channel_mults})"
            )


# --------------------------------------------------------------------------------------------
# 02 — ViT patches, attention cost, gigapixel images


@dataclass(frozen=True)
class ViTExperiment(Presets):
    """Budgets of notebook 02 (the tiny ViT's own settings are ``ViTConfig`` in
    :mod:`helpers.vit`).

    Attributes
    ----------
    train_digits : int
        Digits the tiny ViT is trained on (the rest of the 1797 are held out).
    ablation_seeds, ablation_epochs : int
        Training runs per variant (with and without position embeddings) and their length; both
        variants get the same budget.
    tile_crops, tile_epochs : int
        Training of the supervised tile encoder (histology crops, DAB-positive or negative).
    shifts : tuple of int
        Offsets (pixels) of the shifted tilings averaged by the iSTAR-style features (spread
        over the 128-px region, so that region borders leave no seams).
    """

    train_digits: int = 1500
    ablation_seeds: int = 5
    ablation_epochs: int = 10
    tile_crops: int = 512
    tile_epochs: int = 10
    shifts: tuple[int, ...] = (0, 32, 64, 96)

    def __post_init__(self) -> None:
        _positive(self)
        if not self.shifts or any(not isinstance(s, int) or s < 0 for s in self.shifts):
            raise ValueError(f"ViTExperiment.shifts must be ints ≥ 0, got {self.shifts!r}")

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("ablation_epochs", "tile_epochs")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, ViTExperiment]:
        """One preset per profile (≥ 5 seeds per variant wherever runs are compared)."""
        return {
            "smoke": cls(ablation_seeds=2, ablation_epochs=1, tile_crops=64, tile_epochs=1, shifts=(0, 64)),
            "laptop": cls(),
            "gpu": cls(ablation_seeds=10, ablation_epochs=30, tile_crops=2048, tile_epochs=20,
                       shifts=(0, 16, 32, 48, 64, 80, 96, 112)),
        }  # fmt: skip


# --------------------------------------------------------------------------------------------
# 03 — DDPM and DDIM


@dataclass(frozen=True)
class DDPMConfig(Presets):
    """Sizes and budgets of notebook 03: the class-conditional digits model, its judge, the
    samplers compared, and the guidance sweep.

    Attributes
    ----------
    image_size, base_channels, channel_mults, attn_resolutions : the digits U-Net.
    schedule, T : noise schedule (``"linear"`` or ``"cosine"``) and number of steps.
    train_steps, batch_size, lr, ema_decay, cond_drop : its training.
    classifier_epochs : training of the judge.
    samples_per_class : samples per digit in each run of the sampler comparison (all samplers
        draw the same batch, so their Fréchet distances and wall times compare).
    ddpm_repeats, sampler_repeats : runs (seeds) of DDPM-1000 and of each DDIM step count.
    ddim_steps : DDIM step counts compared with DDPM-1000.
    guidance : guidance weight of the sampler comparison (0: the plain conditional model).
    guidance_sweep, sweep_per_class, sweep_repeats : the weights compared, samples per digit and
        runs per weight.
    floor_repeats : random draws of real digits for the Fréchet distance's noise floor.
    """

    image_size: int = 16
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 2)
    attn_resolutions: tuple[int, ...] = (4,)
    schedule: str = "linear"
    T: int = 1000
    train_steps: int = 1200
    batch_size: int = 32
    lr: float = 3e-3
    ema_decay: float = 0.999
    cond_drop: float = 0.1
    classifier_epochs: int = 8
    samples_per_class: int = 5
    ddpm_repeats: int = 2
    sampler_repeats: int = 5
    ddim_steps: tuple[int, ...] = (50, 20, 10)
    guidance: float = 0.0
    guidance_sweep: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    sweep_per_class: int = 10
    sweep_repeats: int = 2
    floor_repeats: int = 20

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        _divisible(self, ("image_size",), self.channel_mults)
        _positive(self)
        if any(s > self.T for s in self.ddim_steps):
            raise ValueError(f"ddim_steps {self.ddim_steps} must not exceed T={self.T}")
        if self.guidance < 0 or any(w < 0 for w in self.guidance_sweep):
            raise ValueError(
                f"guidance weights must be >= 0, got {self.guidance} and {self.guidance_sweep}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = (
        "train_steps",
        "classifier_epochs",
        "ddpm_repeats",
        "sampler_repeats",
        "sweep_repeats",
        "floor_repeats",
    )
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, DDPMConfig]:
        """One preset per profile (use ``DDPMConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(base_channels=8, train_steps=30, classifier_epochs=1, samples_per_class=1,
                         ddpm_repeats=1, sampler_repeats=1, guidance_sweep=(0.0, 3.0),
                         sweep_per_class=2, sweep_repeats=1, floor_repeats=3),
            "laptop": cls(),
            "gpu": cls(image_size=32, base_channels=64, train_steps=8000, batch_size=256, lr=1e-3,
                       ema_decay=0.9995, classifier_epochs=20, samples_per_class=50, ddpm_repeats=3,
                       sampler_repeats=5, sweep_per_class=50, sweep_repeats=5, floor_repeats=50),
        }  # fmt: skip

    def model_key(self) -> tuple:
        """The settings the trained model depends on (its cache name): sampling budgets are left
        out, so changing them keeps the model."""
        names = ("image_size", "base_channels", "channel_mults", "attn_resolutions", "schedule",
                 "T", "train_steps", "batch_size", "lr", "ema_decay", "cond_drop")  # fmt: skip
        return tuple((n, getattr(self, n)) for n in names)


# --------------------------------------------------------------------------------------------
# 04 — SSL-conditioned diffusion and large images


@dataclass(frozen=True)
class CondConfig(Presets):
    """The embedding-conditioned diffusion model of notebook 04 and its training.

    Attributes
    ----------
    size : int
        Patch size (pixels). ``base_channels``, ``channel_mults`` : the U-Net's widths.
    tokens : int
        Context tokens the embedding is projected to. ``steps``, ``batch_size``, ``lr`` : training.
    cond_drop : float
        Share of embeddings replaced by the null (zero) embedding during training (0.1 in
        Graikos et al.).
    T, sample_steps : int
        Diffusion steps and DDIM sampling steps. ``guidance`` : guidance weight w of single
        patches (2 in Graikos et al.).
    n_patches : int
        Training patches.
    """

    size: int = 32
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)
    tokens: int = 4
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    cond_drop: float = 0.1
    T: int = 1000
    sample_steps: int = 25
    guidance: float = 2.0
    n_patches: int = 1024

    def __post_init__(self) -> None:
        _positive(self)
        _divisible(self, ("size",), self.channel_mults)
        if not 0 <= self.cond_drop < 1 or self.guidance < 0 or self.sample_steps > self.T:
            raise ValueError(
                f"need 0 <= cond_drop < 1, guidance >= 0, sample_steps <= T; got {self.cond_drop}, "
                f"{self.guidance}, {self.sample_steps}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("steps", "sample_steps")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, CondConfig]:
        """One preset per profile (use ``CondConfig.preset(profile, **overrides)``). The laptop
        model works on 16-pixel patches, small enough to train until it follows its condition."""
        return {
            "smoke": cls(size=16, base_channels=8, channel_mults=(1, 2), steps=8, batch_size=16,
                         T=100, sample_steps=4, n_patches=64),
            "laptop": cls(size=16, base_channels=16, channel_mults=(1, 2), steps=2200,
                          batch_size=32, sample_steps=20, n_patches=1024),
            "gpu": cls(size=64, base_channels=64, channel_mults=(1, 2, 2, 2), steps=8000,
                       batch_size=128, sample_steps=50, n_patches=8192),
        }  # fmt: skip

    def unet_kwargs(self) -> dict[str, object]:
        """Keyword arguments of :class:`helpers.unet.UNet` for this model (add ``cond_dim``)."""
        return dict(
            base_channels=self.base_channels,
            channel_mults=self.channel_mults,
            cond_mode="cross_attention",
            context_tokens=self.tokens,
        )


@dataclass(frozen=True)
class SSLDiffusionExperiment(Presets):
    """What notebook 04 measures, and how often.

    Attributes
    ----------
    grid : int
        Side, in patches, of the real region that conditions the large image.
    n_probe : int
        Patches of the k-NN probe (half to fit, half held out).
    n_refs, n_var : int
        Reference patches, and variations drawn per reference.
    guidance_sweep : tuple of float
        Guidance weights of the variations.
    large_steps, large_guidance : int, float
        DDIM steps and guidance weight of the large-image samplers (50 and 3 in Graikos et al.).
    n_real, n_test : int
        Labelled real patches of the augmentation experiment, and held-out test patches.
    k_aug : int
        Generated variations per real patch.
    aug_seeds : int
        Classifier seeds of the augmentation experiment (≥ 5 where runs are compared).
    clf_epochs : int
        Epochs of the augmented classifier (the real-only one gets as many optimiser steps).
    prior_steps, prior_grid : int
        Training steps of the embedding prior, and the side of the grid it samples.
    """

    grid: int = 4
    n_probe: int = 400
    n_refs: int = 12
    n_var: int = 6
    guidance_sweep: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
    large_steps: int = 50
    large_guidance: float = 3.0
    n_real: int = 16
    n_test: int = 300
    k_aug: int = 4
    aug_seeds: int = 7
    clf_epochs: int = 15
    prior_steps: int = 600
    prior_grid: int = 6

    def __post_init__(self) -> None:
        _positive(self)
        if self.n_refs < 2 or any(w < 0 for w in self.guidance_sweep):
            raise ValueError(
                f"need n_refs >= 2 and guidance weights >= 0, got {self.n_refs}, {self.guidance_sweep}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("clf_epochs", "prior_steps", "large_steps")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, SSLDiffusionExperiment]:
        """One preset per profile."""
        return {
            "smoke": cls(grid=4, n_probe=64, n_refs=3, n_var=2, guidance_sweep=(0.0, 2.0),
                         large_steps=4, n_real=8, n_test=64, k_aug=2, aug_seeds=2, clf_epochs=2,
                         prior_steps=20, prior_grid=4),
            "laptop": cls(),
            "gpu": cls(grid=8, n_probe=2000, n_refs=16, n_var=8, n_real=32, n_test=1000, k_aug=8,
                       aug_seeds=10, clf_epochs=30, prior_steps=3000, prior_grid=8),
        }  # fmt: skip


# --------------------------------------------------------------------------------------------
# 05 — memorization


@dataclass(frozen=True)
class MemorizationExperiment(Presets):
    """Sizes and budgets of notebook 05: the training sets, the two model families and the points
    of their training at which they are evaluated, the encoders and the checks.

    Attributes
    ----------
    size : int
        Side of the brain slices.
    n_small, n_large : int
        The two training sets (the large one contains the small one).
    n_held : int
        Held-out real images: threshold calibration and the FID reference.
    n_fresh : int
        More real images, never used for calibration: false-positive rates, FD noise level.
    n_samples : int
        Samples drawn from each model at each evaluation.
    base_channels, channel_mults, batch_size, lr, ddim_steps : the diffusion models.
    diffusion_stages, gan_stages : tuple of int
        Training steps at which each diffusion model / GAN is evaluated (one run each, stopped and
        resumed; the last entry is the full length).
    ssl_width, ssl_dim, ssl_steps, ssl_batch, ssl_temperature : the SSL encoders.
    ssl_min_scale : float
        Smallest crop of the copy-detection encoder's views (identity-keeping: a few pixels).
    max_shift : int
        Shifts searched by the correlation measure.
    n_planted : int
        Copies planted among the samples to check the search.
    n_boot, fd_splits : int
        Bootstrap replicates of each interval; random real-vs-real splits of the FD noise level.
    """

    size: int = 32
    n_small: int = 24
    n_large: int = 240
    n_held: int = 480
    n_fresh: int = 240
    n_samples: int = 240
    base_channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2, 4)
    batch_size: int = 16
    lr: float = 4e-3
    ddim_steps: int = 20
    diffusion_stages: tuple[int, ...] = (200, 400, 800, 1600)
    gan_stages: tuple[int, ...] = (400, 800, 1600, 3200)
    ssl_width: int = 8
    ssl_dim: int = 64
    ssl_steps: int = 600
    ssl_batch: int = 64
    ssl_temperature: float = 0.1
    ssl_min_scale: float = 0.85
    max_shift: int = 2
    n_planted: int = 16
    n_boot: int = 1000
    fd_splits: int = 10

    def __post_init__(self) -> None:
        ints = (f.name for f in fields(self) if isinstance(getattr(self, f.name), int))
        _positive(self, tuple(n for n in ints if n != "max_shift"))
        if not isinstance(self.max_shift, int) or self.max_shift < 0:
            raise ValueError(
                f"MemorizationExperiment.max_shift must be an int ≥ 0, got {self.max_shift!r}"
            )
        if self.n_small > self.n_large:
            raise ValueError(f"n_small={self.n_small} must not exceed n_large={self.n_large}")
        for name in ("diffusion_stages", "gan_stages"):
            stages = getattr(self, name)
            if not stages or any(b <= a for a, b in itertools.pairwise(stages)) or stages[0] < 1:
                raise ValueError(
                    f"MemorizationExperiment.{name} must be increasing positive steps, got {stages}"
                )
        if self.n_held + self.n_fresh < 2 * self.n_samples:
            raise ValueError(
                f"the FD noise level splits held-out + fresh images in two sets of n_samples: need "
                f"n_held + n_fresh >= 2 * n_samples, got {self.n_held} + {self.n_fresh} < 2 * {self.n_samples}"
            )
        _divisible(self, ("size",), self.channel_mults)

    STEP_FIELDS: ClassVar[tuple[str, ...]] = (
        "diffusion_stages",
        "gan_stages",
        "ssl_steps",
        "ddim_steps",
    )
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, MemorizationExperiment]:
        """One preset per profile."""
        return {
            "smoke": cls(size=32, n_small=8, n_large=32, n_held=32, n_fresh=32, n_samples=16,
                         base_channels=8, channel_mults=(1, 2, 4), batch_size=8, lr=4e-3,
                         ddim_steps=4, diffusion_stages=(5, 15), gan_stages=(10, 20), ssl_width=4,
                         ssl_dim=16, ssl_steps=3, ssl_batch=16, max_shift=2, n_planted=4,
                         n_boot=100, fd_splits=3),
            "laptop": cls(),
            "gpu": cls(size=64, n_small=64, n_large=640, n_held=1280, n_fresh=640, n_samples=640,
                       base_channels=32, channel_mults=(1, 2, 2, 4), batch_size=64, lr=2e-3,
                       ddim_steps=25, diffusion_stages=(750, 1500, 3000, 6000),
                       gan_stages=(2500, 5000, 10000, 20000), ssl_width=32, ssl_dim=128,
                       ssl_steps=2000, ssl_batch=256, max_shift=2, n_planted=32, n_boot=2000,
                       fd_splits=20),
        }  # fmt: skip


# --------------------------------------------------------------------------------------------
# 06 — latent diffusion and text-to-image


@dataclass(frozen=True)
class TextToImageExperiment(Presets):
    """What notebook 06 trains and measures, and how often (the models' own settings are
    ``latent.AutoencoderConfig``, ``text_conditioning.CLIPConfig`` and
    ``text_to_image.LatentDiffusionConfig``).

    Attributes
    ----------
    n_train, n_test : int
        Histology patches from the training region and from the held-out strip.
    captions_per_image : int
        Phrasings of each training image's caption.
    kl_weights : tuple of float
        KL weights compared, each trained for ``kl_steps`` steps of ``kl_batch`` images.
    timing_batch, timing_repeats : int
        Batch and repeats of the U-Net step timing (pixel vs latent space).
    guidance_sweep : tuple of float
        Guidance weights w compared; ``guidance`` is the one fixed beforehand for the headline.
    samples_per_prompt, sample_seeds : int
        Samples per prompt and sampling seed, and how many sampling seeds.
    short_seeds : int
        Training seeds of each caption style in the short-vs-descriptive comparison.
    video_frames, video_sizes : tuple of int
        Frame counts and frame sides of the spacetime-token table; ``tubelet`` the patch.
    """

    n_train: int = 2048
    n_test: int = 256
    captions_per_image: int = 4
    kl_weights: tuple[float, ...] = (1e-6, 1e-2, 1.0)
    kl_steps: int = 100
    kl_batch: int = 16
    timing_batch: int = 8
    timing_repeats: int = 3
    guidance_sweep: tuple[float, ...] = (0.0, 1.0, 3.0, 6.0)
    guidance: float = 3.0
    samples_per_prompt: int = 4
    sample_seeds: int = 2
    short_seeds: int = 1
    video_frames: tuple[int, ...] = (4, 8, 16)
    video_sizes: tuple[int, ...] = (32, 64, 128)
    tubelet: tuple[int, int, int] = (2, 8, 8)

    def __post_init__(self) -> None:
        _positive(self)
        for name in ("kl_weights", "guidance_sweep", "video_frames", "video_sizes", "tubelet"):
            values = getattr(self, name)
            if not values or any(v < 0 for v in values):
                raise ValueError(
                    f"TextToImageExperiment.{name} must be non-negative, got {values!r}"
                )
        if self.guidance not in self.guidance_sweep:
            raise ValueError(
                f"guidance={self.guidance} must be one of guidance_sweep {self.guidance_sweep}"
            )
        for f in self.video_frames:
            if f % self.tubelet[0]:
                raise ValueError(
                    f"video frame count {f} is not divisible by tubelet {self.tubelet}"
                )
        for s in self.video_sizes:
            if s % self.tubelet[1] or s % self.tubelet[2]:
                raise ValueError(f"video size {s} is not divisible by tubelet {self.tubelet}")

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("kl_steps", "timing_repeats")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, TextToImageExperiment]:
        """One preset per profile."""
        return {
            "smoke": cls(n_train=128, n_test=64, captions_per_image=2, kl_weights=(1e-6, 1.0),
                         kl_steps=3, kl_batch=8, timing_batch=4, timing_repeats=2,
                         guidance_sweep=(0.0, 3.0), samples_per_prompt=2, sample_seeds=1,
                         video_frames=(4, 8), video_sizes=(32, 64)),
            "laptop": cls(),
            "gpu": cls(n_train=8192, n_test=1024, kl_steps=1500, kl_batch=64, timing_batch=64,
                       timing_repeats=10, guidance_sweep=(0.0, 1.0, 3.0, 6.0, 9.0),
                       samples_per_prompt=32, sample_seeds=5, short_seeds=5,
                       video_frames=(4, 8, 16, 32), video_sizes=(64, 128, 256)),
        }  # fmt: skip


# --------------------------------------------------------------------------------------------
# 07 — real, spatially-variant noise (SVNR)


@dataclass(frozen=True)
class RealNoiseExperiment(Presets):
    """What notebook 07 measures, and how often (the denoisers' own settings are
    :class:`helpers.svnr.SVNRConfig`).

    Attributes
    ----------
    n_train : int
        Clean training slices of each dataset.
    n_test : int
        Held-out images of every comparison (≥ 16 in ``laptop``).
    noise_seeds : int
        Noise draws (and sampler seeds) per held-out image.
    datasets : tuple of str
        Datasets with the full comparison: ``"brain"`` (coil-like noise field) and/or
        ``"histology"`` (Poisson–Gaussian noise, grey).
    train_seeds : int
        Training seeds of each diffusion model (median and spread when > 1).
    dip_scales, dip_channels, dip_iterations : int
        The DIP network and its iteration cap (the σ² rule usually stops it earlier).
    bm3d_images : int
        Held-out images BM3D runs on (it costs about 2 s per image on a CPU); 0 skips it.
    """

    n_train: int = 512
    n_test: int = 16
    noise_seeds: int = 2
    datasets: tuple[str, ...] = ("brain",)
    train_seeds: int = 1
    dip_scales: int = 3
    dip_channels: int = 16
    dip_iterations: int = 400
    bm3d_images: int = 16

    def __post_init__(self) -> None:
        ints = tuple(f.name for f in fields(self) if isinstance(getattr(self, f.name), int))
        _positive(self, tuple(n for n in ints if n != "bm3d_images"))
        if not isinstance(self.bm3d_images, int) or self.bm3d_images < 0:
            raise ValueError(
                f"RealNoiseExperiment.bm3d_images must be an int ≥ 0, got {self.bm3d_images!r}"
            )
        unknown = sorted(set(self.datasets) - {"brain", "histology"})
        if unknown or not self.datasets or self.datasets[0] != "brain":
            raise ValueError(
                f"RealNoiseExperiment.datasets must start with 'brain' and hold only 'brain' and "
                f"'histology', got {self.datasets!r}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("dip_iterations",)
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, RealNoiseExperiment]:
        """One preset per profile."""
        return {
            "smoke": cls(n_train=64, n_test=4, noise_seeds=1, datasets=("brain", "histology"),
                         train_seeds=2, dip_scales=2, dip_channels=8, dip_iterations=20,
                         bm3d_images=2),
            "laptop": cls(),
            "gpu": cls(n_train=4096, n_test=64, noise_seeds=3, datasets=("brain", "histology"),
                       train_seeds=3, dip_scales=4, dip_channels=64, dip_iterations=3000,
                       bm3d_images=64),
        }  # fmt: skip


# --------------------------------------------------------------------------------------------
# 08 — measuring images


@dataclass(frozen=True)
class MeasuringExperiment(Presets):
    """Sizes and budgets of notebook 08: perceptual triplets, OOD volumes, FIN classifiers.

    The methods' own settings live with them (``SSLConfig``, ``ViTConfig``, ``AEConfig`` in
    :mod:`helpers.ood`, ``FINConfig`` in :mod:`helpers.radiomics`).

    Attributes
    ----------
    size : int
        Side of the histology patches of the triplets (the SSL encoder's patch size).
    n_train_triplets, n_test_triplets : int
        Triplets per distortion family from the training region (to tune the ensemble's head)
        and from the held-out region (to measure).
    pool : int
        Candidates for each triplet's look-alike patch.
    n_gallery : int
        Training patches (non-overlapping, at most as many as fit) among which edited copies are
        searched.
    vit_epochs, vit_depth : int
        The tiny ViT whose class token is one of the ensemble's encoders.
    head_steps : int
        Adam steps of the ensemble's head.
    n_boot : int
        Bootstrap replicates of every interval.
    vol_size : int
        Side of the brain volumes (voxels).
    n_vol_train, n_vol_test : int
        In-distribution training volumes; held-out in-distribution volumes, and as many volumes
        per out-of-distribution family.
    hist_bins, k : int
        Bins of the histogram embedding; neighbours of the k-NN score.
    slice_size : int
        Side of the brain slices of the FIN experiment.
    n_slices_train, n_slices_val, n_slices_test : int
        Slices to train the classifiers, to follow their accuracy each epoch, and to test them.
    clf_epochs, clf_seeds : int
        Epochs of each classifier, seeds per arm (≥ 5 in the laptop profile).
    target_accuracy : float
        The validation accuracy whose first epoch is counted.
    """

    size: int = 32
    n_train_triplets: int = 150
    n_test_triplets: int = 150
    pool: int = 64
    n_gallery: int = 160
    vit_epochs: int = 10
    vit_depth: int = 2
    head_steps: int = 300
    n_boot: int = 1000
    vol_size: int = 48
    n_vol_train: int = 100
    n_vol_test: int = 50
    hist_bins: int = 64
    k: int = 5
    slice_size: int = 32
    n_slices_train: int = 320
    n_slices_val: int = 320
    n_slices_test: int = 400
    clf_epochs: int = 20
    clf_seeds: int = 5
    target_accuracy: float = 0.8

    def __post_init__(self) -> None:
        _positive(self)
        if self.k > self.n_vol_train:
            raise ValueError(
                f"MeasuringExperiment.k={self.k} exceeds n_vol_train={self.n_vol_train}"
            )
        if self.vol_size % 8 or self.slice_size % 8:
            raise ValueError(
                f"vol_size and slice_size must be divisible by 8, got {self.vol_size}, {self.slice_size}"
            )
        if not 0 < self.target_accuracy <= 1:
            raise ValueError(f"target_accuracy must be in (0, 1], got {self.target_accuracy}")

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("vit_epochs", "head_steps", "clf_epochs")
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, MeasuringExperiment]:
        """One preset per profile."""
        return {
            "smoke": cls(size=16, n_train_triplets=6, n_test_triplets=6, pool=16, n_gallery=16, vit_epochs=1,
                         vit_depth=1, head_steps=20, n_boot=50, vol_size=16, n_vol_train=10,
                         n_vol_test=6, hist_bins=32, k=3, slice_size=16, n_slices_train=32,
                         n_slices_val=32, n_slices_test=32, clf_epochs=2, clf_seeds=2),
            "laptop": cls(),
            "gpu": cls(size=64, n_train_triplets=500, n_test_triplets=500, pool=128, n_gallery=160, vit_epochs=30,
                       vit_depth=4, head_steps=500, n_boot=2000, vol_size=96, n_vol_train=300,
                       n_vol_test=150, hist_bins=128, k=5, slice_size=64, n_slices_train=2000,
                       n_slices_val=1000, n_slices_test=2000, clf_epochs=30, clf_seeds=10),
        }  # fmt: skip
