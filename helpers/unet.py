"""A small, readable U-Net for ε-prediction, and a wrapper around diffusers' ``UNet2DModel``.

The network of DDPM (Ho et al. 2020, appendix B), scaled down: a sinusoidal time embedding
(:func:`helpers.sinusoidal.sinusoidal_embedding`), residual blocks that add the embedding,
self-attention at low resolution, down- and up-sampling with skip connections. Optional
conditioning, with the null conditions of :func:`helpers.diffusion.null_condition`:

* class labels ``y``: an embedding added to the time embedding; label ``num_classes`` is the
  *null* class used for classifier-free guidance;
* a conditioning vector ``cond`` (e.g. an SSL embedding; all zeros is the null vector), either
  added to the time embedding (``cond_mode="add"``) or, as Graikos et al. (CVPR 2024) and Stable
  Diffusion do, projected to a few context tokens that every position attends to through a
  cross-attention layer after the residual blocks of the lower levels and the middle
  (``cond_mode="cross_attention"``, :class:`CrossAttention`).

Every model here is called as ``model(x, t, y=None, cond=None) -> ε̂`` with ``x`` ``(B, C, H, W)``
and ``t`` ``(B,)`` integer timesteps. :class:`UNet` also takes a *time map* ``t`` ``(B, H, W)``
(real-valued, one diffusion time per pixel, as SVNR's spatially-variant noise needs, Pearl et al.
2023): each pixel's time gets the same sinusoidal embedding and MLP, and every residual block adds
the embedding map average-pooled to its resolution. A constant map gives the scalar-time output.

Note: with a single context token the softmax of cross-attention is 1 for every query, so the
layer reduces to adding one vector per channel; several tokens let each position choose.

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] O. Ronneberger, P. Fischer, T. Brox, "U-Net", MICCAI 2015.
.. [3] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.
.. [4] R. Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022.
.. [5] A. Graikos et al., "Learned representation-guided diffusion models for large-image
   generation", CVPR 2024.
.. [6] N. Pearl et al., "SVNR: Spatially-variant Noise Removal with Denoising Diffusion",
   arXiv 2306.16052, 2023 (a time embedding per pixel).

Examples
--------
>>> import torch
>>> from helpers.unet import UNet
>>> net = UNet(1, base_channels=16, num_classes=10)
>>> net(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]), y=torch.tensor([0, 1, 2, 10])).shape
torch.Size([4, 1, 16, 16])
>>> xa = UNet(3, base_channels=16, channel_mults=(1, 2), cond_dim=16, cond_mode="cross_attention")
>>> xa(torch.randn(2, 3, 16, 16), torch.tensor([3, 9]), cond=torch.randn(2, 16)).shape
torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .runtime import seeded
from .sinusoidal import sinusoidal_embedding
from .validation import check_choice, check_input_dtype, check_int, check_number

__all__ = [
    "COND_MODES",
    "CrossAttention",
    "DiffusersUNet",
    "EmbeddingMap",
    "UNet",
    "check_labels",
    "make_model",
]

COND_MODES = ("add", "cross_attention")
"""How a conditioning vector enters :class:`UNet`."""


def _groups(channels: int) -> int:
    """GroupNorm groups: the largest of 32, 16, … that divides ``channels`` with ≥ 4 channels each."""
    return next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 4), 1)


class EmbeddingMap:
    """A per-pixel embedding ``SiLU(e)`` ``(B, E, H, W)`` and its average-pooled copies.

    What :meth:`UNet.embed` returns for a time map: every residual block asks for the map at its
    own resolution (:meth:`at`); each resolution is pooled once per forward pass.
    """

    def __init__(self, activated: torch.Tensor):
        self.full = activated  # (B, E, H, W), SiLU already applied
        self._pooled: dict[tuple[int, int], torch.Tensor] = {}

    def at(self, size: torch.Size | tuple[int, int]) -> torch.Tensor:
        """The map average-pooled to ``size`` = (H', W'), ``(B, E, H', W')``."""
        size = tuple(size)
        if size == tuple(self.full.shape[-2:]):
            return self.full
        if size not in self._pooled:
            self._pooled[size] = F.adaptive_avg_pool2d(self.full, size)
        return self._pooled[size]


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, add the embedding, GroupNorm → SiLU → dropout → conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = (
            nn.GroupNorm(_groups(c_in), c_in),
            nn.Conv2d(c_in, c_out, 3, padding=1),
        )
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = (
            nn.GroupNorm(_groups(c_out), c_out),
            nn.Conv2d(c_out, c_out, 3, padding=1),
        )
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | EmbeddingMap) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if isinstance(emb, EmbeddingMap):  # a time per pixel: the same linear map at every pixel
            w = self.emb.weight[:, :, None, None]  # (C_out, E, 1, 1): a 1×1 convolution
            h = h + F.conv2d(emb.at(h.shape[-2:]), w, self.emb.bias)  # (B, C_out, H, W)
        else:
            h = h + self.emb(F.silu(emb))[:, :, None, None]  # (B, C_out, 1, 1) broadcast over H, W
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions of a feature map, with a residual."""

    def __init__(self, channels: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} are not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj(out)


class CrossAttention(nn.Module):
    """Attention from the H·W positions of a feature map (queries) to K context tokens, residual.

    Parameters
    ----------
    channels : int
        Channels of the feature map. ``context_dim`` : length of a token. ``heads`` : int.
    """

    def __init__(self, channels: int, context_dim: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} are not divisible by heads {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)  # starts as the identity
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = (
            self.q(self.norm(x)).reshape(b, self.heads, c // self.heads, h * w).transpose(-1, -2)
        )  # (B, heads, HW, c)
        k, v = (
            self.kv(context).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )  # each (B, heads, K, c)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, c)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Level(nn.Module):
    """The residual blocks (each optionally followed by attention) of one resolution."""

    def __init__(
        self, channels: list[tuple[int, int]], emb_dim: int, attn: bool, heads: int, dropout: float
    ):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(a, b, emb_dim, dropout) for a, b in channels)
        self.attn = nn.ModuleList(
            SelfAttention(b, heads) if attn else nn.Identity() for _, b in channels
        )


class UNet(nn.Module):
    """A small U-Net: ε̂ = UNet(x_t, t, y, cond), with ``t`` ``(B,)`` timesteps or a ``(B, H, W)``
    map of per-pixel times.

    Parameters
    ----------
    in_channels : int
        Image channels. ``out_channels`` : int, optional, defaults to ``in_channels``.
    base_channels : int
        Channels of the first level; level ``i`` has ``base_channels * channel_mults[i]``.
    channel_mults : tuple of int
        One entry per resolution; each level but the last halves the resolution.
    num_res_blocks : int
        Residual blocks per level on the way down (one more on the way up).
    attn_resolutions : tuple of int
        Down-sampling factors (1 = input resolution, 2 = half, 4 = quarter …) of the levels that
        get self-attention after each residual block. The middle block always has attention.
        Default ``(4,)``: at 16×16 inputs attention runs at 4×4.
    num_classes : int, optional
        Number of classes for label conditioning; label ``num_classes`` is the null class.
    cond_dim : int, optional
        Length of a conditioning vector (e.g. an SSL embedding); zeros are the null vector.
    cond_mode : {"add", "cross_attention"}
        ``"add"``: an MLP of the vector is added to the time embedding. ``"cross_attention"``: the
        vector is mapped to ``context_tokens`` tokens ``(B, K, E)`` by one linear layer, and a
        :class:`CrossAttention` follows every residual block of the levels in
        ``cross_resolutions`` and the middle block.
    context_tokens : int
        Number of context tokens (cross-attention only; the paper uses one per embedding).
    cross_resolutions : tuple of int, optional
        Down-sampling factors of the levels with cross-attention (default: all but the first).
    dropout : float
        Dropout inside residual blocks. ``heads`` : int, attention heads.
    seed : int, optional
        Initialise the weights from this seed without touching the global random state.

    Examples
    --------
    >>> net = UNet(3, base_channels=16, channel_mults=(1, 2), cond_dim=8)
    >>> net(torch.randn(2, 3, 32, 32), torch.tensor([5, 7]), cond=torch.randn(2, 8)).shape
    torch.Size([2, 3, 32, 32])
    >>> net(torch.randn(2, 3, 32, 32), torch.rand(2, 32, 32) * 100).shape  # a time per pixel
    torch.Size([2, 3, 32, 32])
    """

    accepts_time_maps = True
    """``t`` may be a ``(B, H, W)`` map of per-pixel times (see :meth:`embed`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attn_resolutions: tuple[int, ...] = (4,),
        num_classes: int | None = None,
        cond_dim: int | None = None,
        *,
        cond_mode: str = "add",
        context_tokens: int = 4,
        cross_resolutions: tuple[int, ...] | None = None,
        dropout: float = 0.0,
        heads: int = 1,
        seed: int | None = None,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("base_channels", base_channels),
                            ("num_res_blocks", num_res_blocks), ("heads", heads)):  # fmt: skip
            check_int(value, name, minimum=1)
        for name, value in (("out_channels", out_channels), ("num_classes", num_classes),
                            ("cond_dim", cond_dim)):  # fmt: skip
            check_int(value, name, minimum=1, none_ok=True)  # 0 is not "none": pass None
        if not isinstance(channel_mults, tuple | list) or not channel_mults:
            raise ValueError(
                f"channel_mults must be a non-empty tuple of ints, got {channel_mults!r}"
            )
        for m in channel_mults:
            check_int(m, "each of channel_mults", minimum=1)
        check_number(dropout, "dropout", low=0, high=1)
        check_choice(cond_mode, "cond_mode", COND_MODES)
        cross = cond_mode == "cross_attention"
        if cross and (not isinstance(cond_dim, int) or cond_dim < 1):
            raise ValueError(f"cond_mode='cross_attention' needs cond_dim ≥ 1, got {cond_dim!r}")
        if not isinstance(context_tokens, int) or context_tokens < 1:
            raise ValueError(f"context_tokens must be a positive int, got {context_tokens!r}")
        self.in_channels, self.out_channels = in_channels, out_channels or in_channels
        self.num_classes, self.cond_dim, self.cond_mode = num_classes, cond_dim, cond_mode
        self.tokens = context_tokens if cross else 0
        self.factor = 2 ** (len(channel_mults) - 1)  # inputs must be divisible by this
        emb_dim = 4 * base_channels
        with seeded(seed):
            self.time_mlp = nn.Sequential(
                nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
            )
            self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
            self.cond_mlp = (
                nn.Sequential(nn.Linear(cond_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                if cond_dim and not cross
                else None
            )
            self._build_levels(in_channels, base_channels, channel_mults, num_res_blocks,
                               attn_resolutions, emb_dim, heads, dropout)  # fmt: skip
            levels = len(self.down)
            if cross:  # parameter names as they were in the kit's former CrossAttnUNet
                self.to_tokens = nn.Linear(cond_dim, context_tokens * emb_dim)  # (B, D) → (B, K·E)
                wanted = (
                    tuple(2**i for i in range(1, levels))
                    if cross_resolutions is None
                    else cross_resolutions
                )
                self.cross_levels = [i for i in range(levels) if 2**i in wanted]

                def per_block(level: Level) -> nn.ModuleList:  # one cross-attention per block
                    return nn.ModuleList(
                        CrossAttention(r.conv2.out_channels, emb_dim) for r in level.res
                    )

                self.down_cross = nn.ModuleDict(
                    {str(i): per_block(self.down[i]) for i in self.cross_levels}
                )
                self.up_cross = nn.ModuleDict(
                    {str(i): per_block(self.up[levels - 1 - i]) for i in self.cross_levels}
                )
                self.mid_cross = CrossAttention(self.mid.res[0].conv2.out_channels, emb_dim)
            else:
                self.cross_levels = []

    def _build_levels(
        self, in_channels, base_channels, channel_mults, num_res_blocks, attn_resolutions,
        emb_dim, heads, dropout,
    ) -> None:  # fmt: skip
        chans = [base_channels * m for m in channel_mults]
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [base_channels], base_channels
        for i, ch in enumerate(chans):
            pairs = [(c if j == 0 else ch, ch) for j in range(num_res_blocks)]
            self.down.append(Level(pairs, emb_dim, 2**i in attn_resolutions, heads, dropout))
            skips += [ch] * num_res_blocks
            c = ch
            last = i == len(chans) - 1
            self.downsample.append(
                nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            )
            skips += [] if last else [ch]
        self.mid = Level([(c, c), (c, c)], emb_dim, attn=False, heads=heads, dropout=dropout)
        self.mid_attn = SelfAttention(c, heads)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            pairs = []
            for _ in range(num_res_blocks + 1):
                pairs.append((c + skips.pop(), ch))
                c = ch
            self.up.append(Level(pairs, emb_dim, 2**i in attn_resolutions, heads, dropout))
            self.upsample.append(
                nn.Identity()
                if i == 0
                else nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)
                )
            )
        self.norm_out = nn.GroupNorm(_groups(c), c)
        self.conv_out = nn.Conv2d(c, self.out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def embed(
        self, t: torch.Tensor, y: torch.Tensor | None, cond: torch.Tensor | None
    ) -> torch.Tensor | EmbeddingMap:
        """Time embedding plus label and (``cond_mode="add"``) vector embeddings ``(B, E)``.

        ``None`` means the null condition. For a time map ``t`` ``(B, H, W)`` every pixel's time
        goes through the same sinusoidal code and MLP, the label and vector embeddings are added
        at every pixel, and the result is an :class:`EmbeddingMap` of ``(B, E, H, W)``.
        """
        if t.ndim == 3:
            return self._embed_map(t, y, cond)
        dtype = self.time_mlp[0].weight.dtype  # the sinusoids are float32; the net may be bf16
        emb = self.time_mlp(sinusoidal_embedding(t, self.conv_in.out_channels).to(dtype))  # (B, E)
        if self.label_emb is not None:
            y = torch.full_like(t, self.num_classes, dtype=torch.long) if y is None else y
            emb = emb + self.label_emb(y)
        if self.cond_mlp is not None:
            cond = torch.zeros(t.shape[0], self.cond_dim, device=t.device) if cond is None else cond
            emb = emb + self.cond_mlp(cond.to(emb.dtype))
        return emb

    def _embed_map(
        self, t: torch.Tensor, y: torch.Tensor | None, cond: torch.Tensor | None
    ) -> EmbeddingMap:
        """:meth:`embed` of a time map ``(B, H, W)``: the same terms in the same order at every
        pixel, SiLU applied once (the residual blocks apply it to a vector embedding)."""
        b, hh, ww = t.shape
        dtype = self.time_mlp[0].weight.dtype  # the sinusoids are float32; the net may be bf16
        emb = self.time_mlp(
            sinusoidal_embedding(t.reshape(-1), self.conv_in.out_channels).to(dtype)
        )
        emb = emb.reshape(b, hh, ww, -1).permute(0, 3, 1, 2)  # (B·H·W, E) → (B, E, H, W)
        if self.label_emb is not None:
            y = (
                torch.full((b,), self.num_classes, dtype=torch.long, device=t.device)
                if y is None
                else y
            )
            emb = emb + self.label_emb(y)[:, :, None, None]
        if self.cond_mlp is not None:
            cond = torch.zeros(b, self.cond_dim, device=t.device) if cond is None else cond
            emb = emb + self.cond_mlp(cond.to(emb.dtype))[:, :, None, None]
        return EmbeddingMap(F.silu(emb))

    def context(self, cond: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Context tokens ``(B, K, E)`` of the vectors (``cond_mode="cross_attention"``; zeros
        where ``cond`` is ``None``)."""
        if not self.tokens:
            raise ValueError("context tokens exist only with cond_mode='cross_attention'")
        cond = torch.zeros(batch, self.cond_dim, device=device) if cond is None else cond
        cond = cond.to(self.to_tokens.weight.dtype)
        return self.to_tokens(cond).reshape(batch, self.tokens, -1)

    def _cross(self, where: str, level: int, block: int, h: torch.Tensor, ctx) -> torch.Tensor:
        """The cross-attention after residual block ``block`` of ``level`` (if it has one)."""
        if ctx is None or level not in self.cross_levels:
            return h
        layers = self.down_cross if where == "down" else self.up_cross
        return layers[str(level)][block](h, ctx)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_inputs(self, x, t, y, cond)
        emb = self.embed(t, y, cond)  # (B, E) or a per-pixel EmbeddingMap: time, label, vector
        ctx = self.context(cond, x.shape[0], x.device) if self.tokens else None  # (B, K, E)
        levels = len(self.down)
        h = self.conv_in(x)  # (B, base, H, W)
        skips = [h]
        for i, (level, down) in enumerate(zip(self.down, self.downsample, strict=True)):
            for j, (res, attn) in enumerate(zip(level.res, level.attn, strict=True)):
                h = self._cross("down", i, j, attn(res(h, emb)), ctx)
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)  # (B, C, H/2, W/2)
                skips.append(h)
        h = self.mid_attn(self.mid.res[0](h, emb))
        h = self.mid_cross(h, ctx) if ctx is not None else h
        h = self.mid.res[1](h, emb)
        for k, (level, up) in enumerate(zip(self.up, self.upsample, strict=True)):
            i = levels - 1 - k  # resolution index of this up level
            for j, (res, attn) in enumerate(zip(level.res, level.attn, strict=True)):
                h = attn(res(torch.cat([h, skips.pop()], dim=1), emb))  # concat skip on channels
                h = self._cross("up", i, j, h, ctx)
            h = up(h)  # (B, C, 2H, 2W) except at the top level
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, H, W)


def _check_inputs(model: nn.Module, x, t, y, cond) -> None:
    """Shapes and ranges a user is likely to get wrong, with messages that say what was expected."""
    check_input_dtype(model, x, "x")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"t must be a (B,) tensor of timesteps, got {type(t).__name__}")
    if x.ndim != 4 or x.shape[1] != model.in_channels:
        raise ValueError(f"x must be (B, {model.in_channels}, H, W), got {tuple(x.shape)}")
    f = model.factor
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"x must have a height and width ≥ 1, got {tuple(x.shape)}")
    if x.shape[-1] % f or x.shape[-2] % f:
        raise ValueError(
            f"image size {tuple(x.shape[-2:])} is not divisible by {f} (2 ** (levels - 1))"
        )
    if t.ndim == 3 and getattr(model, "accepts_time_maps", False):
        if t.shape != (x.shape[0], *x.shape[-2:]):
            raise ValueError(
                f"a time map must have shape ({x.shape[0]}, {x.shape[-2]}, {x.shape[-1]}) like x, "
                f"got {tuple(t.shape)}"
            )
    elif t.shape != (x.shape[0],):
        maps = " or a (B, H, W) time map" if getattr(model, "accepts_time_maps", False) else ""
        raise ValueError(f"t must have shape ({x.shape[0]},){maps}, got {tuple(t.shape)}")
    if y is not None and not model.num_classes:
        raise ValueError("labels y were given but the model has num_classes=None")
    if cond is not None and not model.cond_dim:
        raise ValueError("a conditioning vector was given but the model has cond_dim=None")
    if y is not None:
        check_labels(y, x.shape[0], model.num_classes)
    if cond is not None and cond.shape != (x.shape[0], model.cond_dim):
        raise ValueError(f"cond must be ({x.shape[0]}, {model.cond_dim}), got {tuple(cond.shape)}")


def check_labels(y: torch.Tensor, batch: int, num_classes: int) -> None:
    """``y`` must be ``(batch,)`` integer labels in ``[0, num_classes]`` (``num_classes`` = null)."""
    if y.shape != (batch,) or y.is_floating_point():
        raise ValueError(
            f"y must be ({batch},) integer labels, got shape {tuple(y.shape)} and dtype {y.dtype}"
        )
    if batch and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(
            f"y must hold labels in [0, {num_classes}] (the last is the null label), "
            f"got values from {int(y.min())} to {int(y.max())}"
        )


class DiffusersUNet(nn.Module):
    """diffusers' ``UNet2DModel`` behind the same call: ``model(x, t, y=None, cond=None) -> ε̂``.

    Class labels use ``num_class_embeds = num_classes + 1`` (the last is null); a conditioning
    vector goes through a linear map into the time-embedding space (``class_embed_type="identity"``).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int | None = None,
        cond_dim: int | None = None,
        cond_proj: nn.Module | None = None,
    ):
        super().__init__()
        self.net, self.num_classes, self.cond_dim, self.cond_proj = (
            net,
            num_classes,
            cond_dim,
            cond_proj,
        )
        self.in_channels = net.config.in_channels
        self.factor = 2 ** (len(net.config.block_out_channels) - 1)

    def forward(self, x, t, y=None, cond=None):
        _check_inputs(self, x, t, y, cond)
        labels = None
        if self.num_classes:
            labels = torch.full_like(t, self.num_classes, dtype=torch.long) if y is None else y
        elif self.cond_proj is not None:
            cond = torch.zeros(x.shape[0], self.cond_dim, device=x.device) if cond is None else cond
            labels = self.cond_proj(cond.to(x.dtype))  # (B, time_embed_dim)
        return self.net(x, t, class_labels=labels).sample


def make_model(
    kind: str = "unet",
    *,
    in_channels: int = 1,
    out_channels: int | None = None,
    base_channels: int = 32,
    channel_mults: tuple[int, ...] = (1, 2, 2),
    num_res_blocks: int = 1,
    attn_resolutions: tuple[int, ...] = (4,),
    num_classes: int | None = None,
    cond_dim: int | None = None,
    image_size: int = 32,
    dropout: float = 0.0,
) -> nn.Module:
    """Build :class:`UNet` (``kind="unet"``) or a comparable diffusers ``UNet2DModel`` (``"diffusers"``).

    The diffusers model gets the same channels, blocks per level and attention levels, so the two
    can be compared; it does not support labels and a vector at once.

    Returns
    -------
    nn.Module called as ``model(x, t, y=None, cond=None)``.
    """
    if kind == "unet":
        return UNet(
            in_channels,
            out_channels,
            base_channels,
            channel_mults,
            num_res_blocks,
            attn_resolutions,
            num_classes,
            cond_dim,
            dropout=dropout,
        )
    if kind != "diffusers":
        raise ValueError(f"kind must be 'unet' or 'diffusers', got {kind!r}")
    if num_classes and cond_dim:
        raise ValueError("the diffusers model takes class labels or a vector, not both")
    from diffusers import UNet2DModel

    attn = [2**i in attn_resolutions for i in range(len(channel_mults))]
    emb_dim = 4 * base_channels
    net = UNet2DModel(
        sample_size=image_size,
        in_channels=in_channels,
        out_channels=out_channels or in_channels,
        block_out_channels=tuple(base_channels * m for m in channel_mults),
        layers_per_block=num_res_blocks,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        norm_num_groups=_groups(base_channels),
        attention_head_dim=None,
        dropout=dropout,
        num_class_embeds=num_classes + 1 if num_classes else None,
        class_embed_type="identity" if cond_dim else None,
    )
    proj = nn.Linear(cond_dim, emb_dim) if cond_dim else None
    return DiffusersUNet(net, num_classes=num_classes, cond_dim=cond_dim, cond_proj=proj)
