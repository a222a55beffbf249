"""A small self-supervised (SSL) encoder for histology patches, its embeddings and a k-NN probe.

Graikos et al. (CVPR 2024) condition a diffusion model on embeddings of a self-supervised
encoder instead of expensive patch labels. At course scale we train our own encoder on CPU with
**SimCLR** (Chen et al. 2020): two random augmentations ("views") of each patch are pulled
together and pushed away from the views of the other patches of the batch by the InfoNCE
(NT-Xent) loss. We use SimCLR rather than DINO's self-distillation because it has no teacher,
centring or temperature schedules that must be tuned to avoid collapse, and it trains well in a
few hundred steps with batches of 64–128 — what a laptop CPU affords. The pathology encoders the
paper uses (HIPT, iBOT, CTransPath) and DINO ViT-S/16 are listed in :data:`ENCODERS` and used
when their weights are reachable.

References
----------
.. [1] A. Graikos, S. Yellapragada, M.-Q. Le, S. Kapse, P. Prasanna, J. Saltz, D. Samaras,
   "Learned representation-guided diffusion models for large-image generation", CVPR 2024.
.. [2] T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive
   Learning of Visual Representations", ICML 2020.
.. [3] M. Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.

Examples
--------
>>> import torch
>>> from helpers import self_supervised
>>> enc = self_supervised.Encoder(3, width=8, dim=16)
>>> self_supervised.embed(enc, torch.rand(5, 3, 16, 16)).shape
torch.Size([5, 16])
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint, runtime
from .runtime import Presets, seeded
from .validation import (
    as_device,
    check_input_dtype,
    check_int,
    check_number,
    check_seed,
    check_tensor,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ENCODERS",
    "Encoder",
    "PretrainedEncoder",
    "SSLConfig",
    "augment",
    "embed",
    "info_nce",
    "knn_accuracy",
    "load_encoder",
    "train_encoder",
]


@dataclass(frozen=True)
class SSLConfig(Presets):
    """Settings of the SSL encoder and its training.

    Attributes
    ----------
    size : int
        Patch size in pixels. ``width`` : channels of the first conv; ``dim`` : embedding length.
    steps, batch_size, lr : int, int, float
        AdamW steps, patches per batch (two views each), learning rate.
    temperature : float
        τ of the InfoNCE loss (0.1–0.5 in SimCLR).
    n_patches : int
        Training patches drawn from the ``"train"`` region of the histology image.
    """

    size: int = 32
    width: int = 32
    dim: int = 64
    steps: int = 300
    batch_size: int = 96
    lr: float = 2e-3
    temperature: float = 0.2
    n_patches: int = 1024

    def __post_init__(self) -> None:
        for name in ("size", "width", "dim", "steps", "batch_size", "n_patches"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"SSLConfig.{name} must be a positive int, got {v!r}")
        if self.size % 4:
            raise ValueError(f"SSLConfig.size must be divisible by 4, got {self.size}")
        if not self.lr > 0 or not self.temperature > 0:
            raise ValueError(f"need lr > 0 and temperature > 0, got {self.lr}, {self.temperature}")

    @classmethod
    def presets(cls) -> dict[str, SSLConfig]:
        """One preset per profile (use ``SSLConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(size=16, width=8, dim=16, steps=10, batch_size=32, n_patches=128),
            "laptop": cls(size=32, width=16, dim=64, steps=400, batch_size=64, n_patches=1024),
            "gpu": cls(size=64, width=64, dim=128, steps=3000, batch_size=256, n_patches=8192),
        }

    def key(self) -> str:
        """A short string naming this configuration (used in cache file names)."""
        return "_".join(f"{v}" for v in asdict(self).values()).replace(".", "p")


class Encoder(nn.Module):
    """A small CNN: five conv blocks (two of stride 2), global average pooling, a linear map.

    ``forward`` returns the representation ``(B, dim)``; ``head`` is SimCLR's projection MLP,
    used only by the loss (the representation before the head transfers better [2]_).
    """

    def __init__(
        self, in_channels: int = 3, width: int = 32, dim: int = 64, *, seed: int | None = None
    ):
        super().__init__()
        with seeded(seed):
            self._build(in_channels, width, dim)

    def _build(self, in_channels: int, width: int, dim: int) -> None:
        w = width

        def block(a: int, b: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(a, b, 3, stride, 1), nn.GroupNorm(min(8, b // 4) or 1, b), nn.SiLU()
            )

        self.features = nn.Sequential(
            block(in_channels, w, 1),
            block(w, 2 * w, 2),
            block(2 * w, 2 * w, 1),
            block(2 * w, 4 * w, 2),
            block(4 * w, 4 * w, 1),
        )
        self.fc = nn.Linear(4 * w, dim)
        self.norm = nn.BatchNorm1d(dim, affine=False)  # centres embeddings on the data's mean
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.in_channels, self.dim = in_channels, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype(self, x, "x")
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[-2:]) < 1:
            raise ValueError(
                f"encoder input must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self.norm(self.fc(self.features(x).mean(dim=(2, 3))))  # (B, dim)


def augment(x: torch.Tensor, generator: torch.Generator, *, min_scale: float = 0.6) -> torch.Tensor:
    """A random view of each image: resized crop, flips, 90° rotation, colour jitter, noise.

    Parameters
    ----------
    x : Tensor ``(B, C, H, W)`` in ``[0, 1]``
    generator : torch.Generator
        CPU generator of every random draw.
    min_scale : float
        Smallest crop side as a share of the image side.

    Returns
    -------
    Tensor ``(B, C, H, W)`` in ``[0, 1]``
    """
    b, c, h, w = x.shape
    r = lambda *s: torch.rand(*s, generator=generator).to(x.device)  # noqa: E731
    scale = min_scale + (1 - min_scale) * r(b)  # crop side / image side
    cx, cy = (1 - scale) * (2 * r(b) - 1), (1 - scale) * (2 * r(b) - 1)  # crop centre in [-1, 1]
    flip = torch.where(r(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale * flip, scale, cx, cy
    grid = F.affine_grid(theta, (b, c, h, w), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    k = int(torch.randint(4, (1,), generator=generator))
    out = torch.rot90(out, k, dims=(2, 3))
    gain = 1 + 0.4 * (r(b, 1, 1, 1) - 0.5)  # brightness
    tint = 1 + 0.16 * (r(b, c, 1, 1) - 0.5)  # per-channel stain variation
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + 0.4 * (r(b, 1, 1, 1) - 0.5)
    out = (out - mean) * contrast + mean
    out = out * gain * tint + 0.02 * torch.randn(out.shape, generator=generator).to(x.device)
    return out.clamp(0, 1)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent loss for two views ``(B, D)``: each view must pick out its partner.

    L = −(1/2B) Σ_i log exp(s_{i,p(i)}/τ) / Σ_{k≠i} exp(s_{i,k}/τ), s = cosine similarity.

    Returns
    -------
    Tensor ``()``
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(
            f"need two (B, D) views of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    check_number(temperature, "temperature", low=0, low_open=True)
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2B, D)
    sim = z @ z.T / temperature  # (2B, 2B)
    sim.fill_diagonal_(float("-inf"))  # a view is not its own partner
    b = z1.shape[0]
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, partner)


def train_encoder(
    images: torch.Tensor,
    config: SSLConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Encoder, list[float]]:
    """Train an :class:`Encoder` with SimCLR on ``images``.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` in ``[0, 1]``
    config : SSLConfig
    seed : int
        Seed of the initialisation, batches and augmentations.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool
        Show a progress bar with the loss.

    Returns
    -------
    (Encoder in eval mode, loss history)
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {getattr(images, 'shape', images)!r}")
    check_tensor(images, "images", nonempty=True, floating=True, finite=True)
    check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = as_device(device) or runtime.detect_device()
    enc = Encoder(images.shape[1], config.width, config.dim, seed=seed).to(device)
    opt = torch.optim.AdamW(enc.parameters(), lr=config.lr, weight_decay=1e-4)
    data, history = images.to(device), []
    bar = tqdm(range(config.steps), disable=not progress, desc="SimCLR")
    for step in bar:
        for g in opt.param_groups:  # cosine decay
            g["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        idx = torch.randint(0, len(data), (config.batch_size,), generator=gen).to(device)
        x = data[idx]
        v1, v2 = augment(x, gen), augment(x, gen)
        loss = info_nce(enc.head(enc(v1)), enc.head(enc(v2)), config.temperature)
        history.append(loss.item())
        if not math.isfinite(history[-1]):
            raise FloatingPointError(
                f"the SimCLR loss became {history[-1]} at step {step + 1} of {config.steps}"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return enc.eval(), history


@torch.no_grad()
def embed(
    encoder: nn.Module, images: torch.Tensor, *, batch_size: int = 256, normalize: bool = True
) -> torch.Tensor:
    """Embeddings of ``images`` ``(N, C, H, W)`` in ``[0, 1]`` → ``(N, D)`` (unit length by default)."""
    check_tensor(images, "images", ndim=4, layout="(N, C, H, W)")
    check_int(batch_size, "batch_size", minimum=1)
    device = next(encoder.parameters()).device
    was = encoder.training
    encoder.eval()
    out = torch.cat(
        [
            encoder(images[k : k + batch_size].to(device)).float().cpu()
            for k in range(0, len(images), batch_size)
        ]
    )
    encoder.train(was)
    return F.normalize(out, dim=1) if normalize else out


def knn_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    test: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    k: int = 5,
) -> float:
    """k-NN probe: share of ``test`` rows whose majority label among the ``k`` most cosine-similar
    ``train`` rows equals their own label.

    Parameters
    ----------
    train, test : Tensor ``(N, D)``, ``(M, D)``
    train_labels, test_labels : Tensor ``(N,)``, ``(M,)`` int64
    k : int

    Returns
    -------
    float in ``[0, 1]``
    """
    if train.shape[0] != train_labels.shape[0] or test.shape[0] != test_labels.shape[0]:
        raise ValueError(
            f"need one label per embedding: got {train.shape[0]} train embeddings and "
            f"{train_labels.shape[0]} train labels, {test.shape[0]} test embeddings and "
            f"{test_labels.shape[0]} test labels"
        )
    check_int(k, "k", minimum=1, maximum=train.shape[0])
    sim = F.normalize(test.float(), dim=1) @ F.normalize(train.float(), dim=1).T  # (M, N)
    nearest = sim.topk(k, dim=1).indices  # (M, k)
    votes = F.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(1)  # (M, classes)
    return float((votes.argmax(1) == test_labels).float().mean())


# ---------------------------------------------------------------------------------------------
# pretrained encoders, registry and cache


class PretrainedEncoder(nn.Module):
    """A timm backbone as an encoder of ``(B, C, H, W)`` images in ``[0, 1]`` → ``(B, D)``.

    Grey images are repeated to three channels, resized (antialiased bilinear) to the model's
    input size and normalised with its pretrained mean and std, as timm's own transforms do;
    the output is the pooled feature before any classifier. ``input_size`` ``(H, W)``, ``mean``
    and ``std`` default to ``model.pretrained_cfg`` (224 × 224 and ImageNet's when absent).
    """

    def __init__(self, model: nn.Module, *, input_size=None, mean=None, std=None):
        super().__init__()
        cfg = dict(getattr(model, "pretrained_cfg", None) or {})
        self.model = model.eval()
        self.size = tuple(int(v) for v in (input_size or cfg.get("input_size", (224, 224))[-2:]))
        mean = torch.tensor(mean or cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32)
        std = torch.tensor(std or cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)
        self.dim = int(getattr(model, "num_features", 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"encoder input must be (B, 1 or 3, H, W), got {tuple(x.shape)}")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(
                f"encoder input must be in [0, 1], got values in [{lo:.3f}, {hi:.3f}] "
                "(diffusion samples in [-1, 1]? map them with diffusion.to_unit)"
            )
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # grey → RGB
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=True
            )
        x = (x - self.mean) / self.std  # the pretrained normalisation
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)  # (B, D)


ENCODERS: dict[str, str] = {
    "course-simclr": "the small CNN trained here with SimCLR (default; offline, cached under data/cache/)",
    "dino-vits16": "DINO ViT-S/16 (Caron et al. 2021), timm weights timm/vit_small_patch16_224.dino on the Hugging Face hub",
    "CTransPath": "pathology encoder of notebook 02 (helpers.foundation_models); used by the paper at 5×",
    "UNI": "pathology encoder of notebook 02 (helpers.foundation_models), gated on the hub",
}
"""Encoders that can produce the conditioning embeddings, and where they come from."""

_DINO = "vit_small_patch16_224.dino"  # timm name; weights at huggingface.co/timm/<name>


def _load_dino(allow_network: bool) -> PretrainedEncoder:
    """DINO ViT-S/16 from the local Hugging Face cache, or downloaded when allowed and reachable."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    from .foundation_models import hub_reachable

    repo = f"timm/{_DINO}"
    cached = try_to_load_from_cache(repo, "model.safetensors")
    fix = (
        f"it needs the weights {repo} from the Hugging Face hub (https://huggingface.co/{repo}). "
        f"On a machine with network run `python -c \"import timm; timm.create_model('{_DINO}', "
        'pretrained=True)"` (this caches them under ~/.cache/huggingface); then it loads offline'
    )
    if not isinstance(cached, str) and not allow_network:
        raise RuntimeError(f"dino-vits16 is not in the local cache and allow_network=False: {fix}")
    if not isinstance(cached, str) and not hub_reachable():
        raise RuntimeError(f"dino-vits16: huggingface.co is not reachable (offline?): {fix}")
    overlay = {"file": cached} if isinstance(cached, str) else {}
    try:
        model = timm.create_model(
            _DINO, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay
        )
    except Exception as err:  # hub and file errors come in several types
        raise RuntimeError(
            f"dino-vits16: loading failed ({type(err).__name__}: {err}); {fix}"
        ) from err
    return PretrainedEncoder(model)


def _images_key(images: torch.Tensor) -> str:
    """A short content hash of ``images`` (shape, dtype and values)."""
    x = images.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(x.shape)}{x.dtype}".encode())
    h.update(x.flatten().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:10]


def load_encoder(
    name: str = "course-simclr",
    *,
    images: torch.Tensor | None = None,
    config: SSLConfig | None = None,
    seed: int = 0,
    allow_network: bool = False,
    progress: bool = True,
) -> nn.Module:
    """An encoder from :data:`ENCODERS`; the default trains (or loads from the cache) our own.

    Parameters
    ----------
    name : str
        A key of :data:`ENCODERS`.
    images : Tensor ``(N, C, H, W)``, optional
        Training patches for ``"course-simclr"`` (default: ``config.n_patches`` histology patches
        of the ``"train"`` region). The cache file is named by ``config``, ``seed`` and a hash of
        these patches (of their recipe for the default ones), so other patches train (and cache)
        another encoder.
    config : SSLConfig, optional
        Default ``SSLConfig.preset("auto")``.
    seed : int
    allow_network : bool
        Lets a pretrained encoder be downloaded (the kit works offline by default; weights
        already in the local Hugging Face cache load without it).
    progress : bool

    Returns
    -------
    nn.Module mapping ``(B, C, H, W)`` in ``[0, 1]`` to ``(B, D)``, in eval mode; pretrained
    encoders come wrapped in :class:`PretrainedEncoder` (resizing and normalisation included).

    Raises
    ------
    KeyError
        Unknown name.
    RuntimeError
        A pretrained encoder that cannot be loaded here; the message says what to download, from
        where, and how.
    """
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    if name == "dino-vits16":
        return _load_dino(allow_network).eval()
    if name != "course-simclr":
        from . import foundation_models

        return PretrainedEncoder(foundation_models.load(name, allow_network=allow_network)).eval()
    config = config or SSLConfig.preset("auto")
    if images is None:  # the default patches are named by their recipe, not hashed
        from . import datasets

        recipe = dict(n=config.n_patches, size=config.size, seed=seed + 1000, region="train")
        data = "histology-{region}-n{n}-s{size}-seed{seed}".format(**recipe)
        data_key = hashlib.sha256(data.encode()).hexdigest()[:10]
    else:
        data_key = _images_key(images)
    path = runtime.cache_dir() / f"ssl_simclr_{config.key()}_data{data_key}_seed{seed}.safetensors"
    enc = Encoder(3 if images is None else images.shape[1], config.width, config.dim)
    if path.exists():
        try:
            tensors, _ = checkpoint.read(path)
        except checkpoint.CheckpointError as err:
            if err.moved_to is None:
                raise
            logger.warning("training the SSL encoder again: %s", err)
        else:
            enc.load_state_dict(tensors)
            logger.info("loaded SSL encoder from %s", path)
            return enc.eval()
    if images is None:
        images = datasets.load("histology", **recipe).images
    enc, history = train_encoder(images, config, seed=seed, progress=progress)
    enc = enc.cpu()
    checkpoint.atomic_save(
        enc.state_dict(), path, meta={"config": asdict(config), "final_loss": history[-1]}
    )
    return enc.eval()
