"""The Vision Transformer: patches as tokens, patch and position embeddings, a tiny ViT, its
training, and where its class token looks.

The three steps of a ViT (Dosovitskiy et al., 2021): (1) cut an image into ``N = HW/P²``
patches of ``P·P·C`` values (:func:`patchify`), (2) embed each linearly into ``D`` dimensions
(:class:`PatchEmbed`) and add a position embedding (learned, or the fixed 2-D sine–cosine table of
:mod:`helpers.sinusoidal`), (3) relate the tokens with a transformer encoder (:class:`Block`); a
class token collects the whole-image representation. :func:`train_vit` trains one with the kit's
classifier loop; :func:`cls_attention` and :func:`attention_rollout` (Abnar & Zuidema 2020) show
where the class token looks.

References
----------
Dosovitskiy, A. et al. "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale." ICLR 2021.
Abnar, S. and Zuidema, W. "Quantifying Attention Flow in Transformers." ACL 2020.

Examples
--------
>>> import torch
>>> from helpers import vit
>>> x = torch.rand(2, 3, 32, 32)
>>> tuple(vit.patchify(x, 8).shape)
(2, 16, 192)
>>> torch.equal(vit.unpatchify(vit.patchify(x, 8), 8, (32, 32)), x)
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn as nn

from .attention import MultiHeadSelfAttention
from .classifier import fit
from .runtime import Presets, detect_device, seeded
from .sinusoidal import sincos_2d
from .validation import check_input_dtype, check_int

logger = logging.getLogger(__name__)

__all__ = [
    "Block",
    "PatchEmbed",
    "TinyViT",
    "ViTConfig",
    "attention_rollout",
    "attention_weights",
    "cls_attention",
    "patchify",
    "train_vit",
    "unpatchify",
]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(p, int) and not isinstance(p, bool) and p > 0 for p in pair)
    ):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return tuple(pair)  # type: ignore[return-value]


def _check_divisible(h: int, w: int, patch: tuple[int, int]) -> None:
    if h % patch[0] or w % patch[1]:
        raise ValueError(
            f"image size {h}×{w} is not divisible by patch size {patch[0]}×{patch[1]}: "
            f"crop or pad the image to a multiple of the patch size"
        )


def patchify(images: torch.Tensor, patch_size: int | tuple[int, int]) -> torch.Tensor:
    """Cut images into non-overlapping patches, flattened row by row (step 1 of a ViT).

    Parameters
    ----------
    images : Tensor ``(B, C, H, W)``
        ``H`` and ``W`` divisible by the patch size.
    patch_size : int or (int, int)
        ``P`` (or ``(P_h, P_w)``).

    Returns
    -------
    Tensor ``(B, N, P·P·C)``
        ``N = (H/P)·(W/P)`` tokens in raster order; each token is the patch laid out as
        ``(C, P, P)``, i.e. the order of a ``Conv2d`` kernel of a :class:`PatchEmbed`.

    Examples
    --------
    >>> tuple(patchify(torch.zeros(1, 1, 16, 16), 4).shape)
    (1, 16, 16)
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (B, C, H, W) tensor, got {got}")
    ph, pw = _pair(patch_size, "patch_size")
    b, c, h, w = images.shape
    _check_divisible(h, w, (ph, pw))
    x = images.reshape(b, c, h // ph, ph, w // pw, pw)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P)
    return x.reshape(b, (h // ph) * (w // pw), c * ph * pw)  # (B, N, C·P·P)


def unpatchify(
    tokens: torch.Tensor, patch_size: int | tuple[int, int], image_size: int | tuple[int, int]
) -> torch.Tensor:
    """Exact inverse of :func:`patchify`.

    Parameters
    ----------
    tokens : Tensor ``(B, N, P·P·C)``
    patch_size : int or (int, int)
    image_size : int or (int, int)
        ``(H, W)`` of the images.

    Returns
    -------
    Tensor ``(B, C, H, W)``
    """
    ph, pw = _pair(patch_size, "patch_size")
    h, w = _pair(image_size, "image_size")
    _check_divisible(h, w, (ph, pw))
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3:
        raise ValueError(
            f"tokens must be a (B, N, P·P·C) tensor, got {getattr(tokens, 'shape', tokens)}"
        )
    b, n, f = tokens.shape
    gh, gw = h // ph, w // pw
    if n != gh * gw or f % (ph * pw):
        raise ValueError(
            f"tokens of shape {tuple(tokens.shape)} do not fit image {h}×{w} with patch {ph}×{pw}: "
            f"expected {gh * gw} tokens of a multiple of {ph * pw} values"
        )
    c = f // (ph * pw)
    x = tokens.reshape(b, gh, gw, c, ph, pw).permute(0, 3, 1, 4, 2, 5)  # (B, C, H/P, P, W/P, P)
    return x.reshape(b, c, h, w)


class PatchEmbed(nn.Module):
    """Patch embedding as a strided convolution (step 2), state-dict compatible with timm's.

    A ``Conv2d`` with kernel = stride = ``P`` applies the same linear map to every patch; it
    equals :func:`patchify` followed by ``nn.Linear`` whose weight is ``proj.weight`` reshaped to
    ``(D, C·P·P)``.

    Parameters
    ----------
    img_size : int
        Expected image side (sets ``grid_size`` and ``num_patches``).
    patch_size : int
        ``P``.
    in_chans : int
        ``C``.
    embed_dim : int
        ``D``.

    Examples
    --------
    >>> pe = PatchEmbed(32, 8, 3, 64)
    >>> tuple(pe(torch.rand(2, 3, 32, 32)).shape), pe.num_patches
    ((2, 16, 64), 16)
    """

    def __init__(
        self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768
    ) -> None:
        super().__init__()
        self.img_size = _pair(img_size, "img_size")
        self.patch_size = _pair(patch_size, "patch_size")
        check_int(in_chans, "in_chans", minimum=1)
        check_int(embed_dim, "embed_dim", minimum=1)
        _check_divisible(*self.img_size, self.patch_size)
        self.grid_size = (
            self.img_size[0] // self.patch_size[0],
            self.img_size[1] // self.patch_size[1],
        )
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype(self, x, "x")
        if x.ndim != 4 or x.shape[1] != self.proj.in_channels or min(x.shape[-2:]) < 1:
            raise ValueError(
                f"expected (B, {self.proj.in_channels}, H, W) images, got {tuple(x.shape)}"
            )
        _check_divisible(x.shape[-2], x.shape[-1], self.patch_size)
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def as_linear(self) -> nn.Linear:
        """The same map as a ``Linear`` layer acting on :func:`patchify` tokens."""
        d = self.proj.out_channels
        linear = nn.Linear(self.proj.weight[0].numel(), d)
        with torch.no_grad():
            linear.weight.copy_(self.proj.weight.reshape(d, -1))  # (D, C·P·P)
            linear.bias.copy_(self.proj.bias)
        return linear


class Block(nn.Module):
    """Pre-norm transformer block: ``x + MSA(LN(x))`` then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, *, return_weights: bool = False):
        if return_weights:
            a, weights = self.attn(self.norm1(x), return_weights=True)
        else:
            a, weights = self.attn(self.norm1(x)), None
        x = x + a  # (B, 1+N, D)
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if return_weights else x


@dataclass(frozen=True)
class ViTConfig(Presets):
    """A tiny ViT and how to train it, with one preset per profile.

    Attributes
    ----------
    img_size, patch_size, in_chans : int
        Input geometry (``img_size`` divisible by ``patch_size``).
    embed_dim, depth, num_heads : int
        Width ``D``, number of blocks, heads (``D`` divisible by heads).
    num_classes : int
        Classifier outputs.
    pos_embed : str
        ``"learned"`` (1-D, trained) or ``"sincos"`` (fixed 2-D).
    epochs, batch_size : int
        Training length.
    lr, weight_decay : float
        AdamW settings (cosine decay).
    """

    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 1
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    num_classes: int = 10
    pos_embed: str = "learned"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05

    def __post_init__(self) -> None:
        for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                     "num_classes", "epochs", "batch_size"):  # fmt: skip
            check_int(getattr(self, name), name, minimum=1)
        _check_divisible(self.img_size, self.img_size, (self.patch_size, self.patch_size))
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.pos_embed not in ("learned", "sincos"):
            raise ValueError(f"pos_embed must be 'learned' or 'sincos', got {self.pos_embed!r}")
        for name in (
            "in_chans",
            "embed_dim",
            "depth",
            "num_heads",
            "num_classes",
            "epochs",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:  # NaN too
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be ≥ 0, got {self.weight_decay}")

    @classmethod
    def presets(cls) -> dict[str, ViTConfig]:
        """One preset per profile: ``smoke`` 2 blocks × 2 epochs, ``laptop`` 30 epochs, ``gpu``
        6 blocks of width 128 × 60 epochs (use ``ViTConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(epochs=2, depth=2),
            "laptop": cls(epochs=30),
            "gpu": cls(epochs=60, embed_dim=128, depth=6),
        }


class TinyViT(nn.Module):
    """A small ViT classifier: patch embedding, class token, position embeddings, pre-norm blocks.

    Parameters
    ----------
    config : ViTConfig
    seed : int, optional
        Initialise the weights from this seed without touching the global random state.

    Examples
    --------
    >>> model = TinyViT(ViTConfig(img_size=16, patch_size=4, depth=1))
    >>> tuple(model(torch.rand(2, 1, 16, 16)).shape)
    (2, 10)
    """

    def __init__(self, config: ViTConfig, *, seed: int | None = None) -> None:
        super().__init__()
        with seeded(seed):
            self._build(config)

    def _build(self, config: ViTConfig) -> None:
        c = config
        self.config = c
        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.in_chans, c.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        n = self.patch_embed.num_patches
        if c.pos_embed == "learned":  # 1-D, one vector per position (class token included)
            self.pos_embed = nn.Parameter(torch.randn(1, 1 + n, c.embed_dim) * 0.02)
        else:  # fixed 2-D sin-cos for the patches, zeros for the class token
            table = torch.cat(
                [torch.zeros(1, c.embed_dim), sincos_2d(self.patch_embed.grid_size, c.embed_dim)]
            )
            self.register_buffer("pos_embed", table[None], persistent=False)
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim)
        self.head = nn.Linear(c.embed_dim, c.num_classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def tokens(self, x: torch.Tensor, *, return_weights: bool = False):
        """Final normalised tokens ``(B, 1+N, D)`` (class token first) and, optionally, the
        attention weights of every block, each ``(B, H, 1+N, 1+N)``."""
        x = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, 1+N, D)
        weights = []
        for block in self.blocks:
            if return_weights:
                x, w = block(x, return_weights=True)
                weights.append(w)
            else:
                x = block(x)
        x = self.norm(x)
        return (x, weights) if return_weights else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tokens(x)[:, 0])  # logits (B, classes) from the class token


# --------------------------------------------------------------------------------------------
# training and attention maps


def _check_data(images: torch.Tensor, labels: torch.Tensor, config: ViTConfig) -> None:
    expected = (config.in_chans, config.img_size, config.img_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"images must have shape (N, {', '.join(map(str, expected))}), got {tuple(images.shape)}"
        )
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= config.num_classes):
        raise ValueError(
            f"labels must lie in [0, {config.num_classes}), got {int(labels.min())}…{int(labels.max())}"
        )


def train_vit(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ViTConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    augment: bool = False,
    progress: bool = True,
) -> tuple[TinyViT, list[float]]:
    """Train a :class:`TinyViT` with :func:`helpers.classifier.fit`: AdamW, linear warm-up then
    cosine decay, cross-entropy.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` in [0, 1]
    labels : Tensor ``(N,)`` int64
    config : ViTConfig
        Architecture and training settings.
    seed : int
        Seeds initialisation, shuffling and augmentation.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    augment : bool
        Random shifts of up to 2 pixels (reflect padding); off by default (digits are centred).
    progress : bool
        Show a tqdm bar with the running loss.

    Returns
    -------
    (model, losses)
        The trained model (eval mode) and the mean loss of each epoch.
    """
    _check_data(images, labels, config)
    model = TinyViT(config, seed=seed).to(device if device is not None else detect_device())
    losses = fit(model, images, labels, epochs=config.epochs, batch_size=config.batch_size,
                 lr=config.lr, weight_decay=config.weight_decay, schedule="warmup_cosine",
                 max_shift=2 if augment else 0, seed=seed, progress=progress)  # fmt: skip
    logger.info("trained TinyViT for %d epochs, final loss %.4f", config.epochs, losses[-1])
    return model, losses


@torch.no_grad()
def attention_weights(model: TinyViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Attention weights of every block, each ``(B, H, 1+N, 1+N)`` (index 0 = class token)."""
    device = next(model.parameters()).device
    model.eval()
    _, weights = model.tokens(images.to(device), return_weights=True)
    return [w.cpu() for w in weights]


def cls_attention(model: TinyViT, images: torch.Tensor) -> torch.Tensor:
    """Last layer's class-token attention to the patches, head-averaged, as ``(B, gh, gw)``."""
    gh, gw = model.patch_embed.grid_size
    last = attention_weights(model, images)[-1].mean(dim=1)  # (B, 1+N, 1+N)
    return last[:, 0, 1:].reshape(-1, gh, gw)


def attention_rollout(
    model: TinyViT, images: torch.Tensor, *, residual: float = 0.5
) -> torch.Tensor:
    """Attention rollout: ``R = Â_L ⋯ Â_1`` with ``Â = (1−α)·mean_h A + α·I`` rows renormalised.

    Parameters
    ----------
    model : TinyViT
    images : Tensor ``(B, C, H, W)``
    residual : float
        ``α``, the weight of the identity (the skip connection); 0.5 as in the paper.

    Returns
    -------
    Tensor ``(B, gh, gw)``: the class token's row of ``R`` over the patches.
    """
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must lie in [0, 1], got {residual}")
    gh, gw = model.patch_embed.grid_size
    rollout = None
    for w in attention_weights(model, images):
        a = w.mean(dim=1)  # (B, T, T)
        a = (1 - residual) * a + residual * torch.eye(a.shape[-1])
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    assert rollout is not None
    return rollout[:, 0, 1:].reshape(-1, gh, gw)
