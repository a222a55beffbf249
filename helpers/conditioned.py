"""Diffusion conditioned on an SSL embedding through cross-attention, with classifier-free guidance.

Graikos et al. (CVPR 2024) feed the embedding of a self-supervised encoder to the denoiser as one
(or two) context tokens of a cross-attention layer, as Stable Diffusion does with text tokens.
:class:`CrossAttnUNet` adds such layers to :class:`helpers.unet.UNet` (same pieces, same call
``model(x, t, y=None, cond=None)``), so :func:`helpers.training.train` (``cond=``, ``cond_drop``)
and the samplers of :mod:`helpers.diffusion` work unchanged. The null embedding is the zero
vector, as in the paper and in :func:`helpers.unet.null_condition`.

Note: with a single context token the softmax of cross-attention is 1 for every query, so the
layer reduces to adding one vector per channel; several tokens let each position choose.

References
----------
.. [1] A. Graikos et al., "Learned representation-guided diffusion models for large-image
   generation", CVPR 2024.
.. [2] R. Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR 2022.
.. [3] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.

Examples
--------
>>> import torch
>>> from helpers import conditioned
>>> net = conditioned.CrossAttnUNet(3, cond_dim=16, base_channels=16, channel_mults=(1, 2))
>>> net(torch.randn(2, 3, 16, 16), torch.tensor([3, 9]), cond=torch.randn(2, 16)).shape
torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import runtime
from .unet import UNet, _check_inputs, _groups

__all__ = [
    "CondConfig",
    "CrossAttention",
    "CrossAttnUNet",
    "cfg_combine",
    "cosine_to_reference",
    "drop_embeddings",
]


@dataclass(frozen=True)
class CondConfig:
    """Settings of the embedding-conditioned diffusion model.

    Attributes
    ----------
    size : int
        Patch size (pixels). ``base_channels``, ``channel_mults`` : the U-Net's widths.
    tokens : int
        Context tokens the embedding is projected to. ``steps``, ``batch_size``, ``lr`` : training.
    cond_drop : float
        Share of embeddings replaced by the null (zero) embedding during training (0.1 in [1]_).
    T, sample_steps : int
        Diffusion steps and DDIM sampling steps. ``guidance`` : default guidance weight w.
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
        for name in (
            "size",
            "base_channels",
            "tokens",
            "steps",
            "batch_size",
            "T",
            "sample_steps",
            "n_patches",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"CondConfig.{name} must be a positive int, got {v!r}")
        if self.size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(
                f"size {self.size} is not divisible by 2 ** (levels - 1) = {2 ** (len(self.channel_mults) - 1)}"
            )
        if not 0 <= self.cond_drop < 1 or self.guidance < 0 or self.sample_steps > self.T:
            raise ValueError(
                f"need 0 <= cond_drop < 1, guidance >= 0, sample_steps <= T; got {self.cond_drop}, {self.guidance}, {self.sample_steps}"
            )

    @classmethod
    def preset(cls, profile: str) -> CondConfig:
        """The preset of ``profile`` (``"smoke"``, ``"laptop"``, ``"gpu"``, or ``"auto"``)."""
        return runtime.pick(
            {
                "smoke": cls(
                    size=16,
                    base_channels=8,
                    channel_mults=(1, 2),
                    steps=8,
                    batch_size=16,
                    T=100,
                    sample_steps=4,
                    n_patches=64,
                ),
                "laptop": cls(
                    size=32,
                    base_channels=16,
                    channel_mults=(1, 2, 2),
                    steps=500,
                    batch_size=32,
                    sample_steps=20,
                    n_patches=768,
                ),
                "gpu": cls(
                    size=64,
                    base_channels=64,
                    channel_mults=(1, 2, 2, 2),
                    steps=8000,
                    batch_size=128,
                    sample_steps=50,
                    n_patches=8192,
                ),
            },
            profile,
        )

    def key(self) -> str:
        """A short string naming this configuration (for cache file names)."""
        parts = (
            "-".join(map(str, v)) if isinstance(v, tuple) else str(v) for v in asdict(self).values()
        )
        return "_".join(parts).replace(".", "p")


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


class CrossAttnUNet(UNet):
    """:class:`helpers.unet.UNet` whose embedding enters through cross-attention to context tokens.

    The embedding ``cond`` ``(B, D)`` is mapped by a linear layer to ``tokens`` context tokens
    ``(B, K, E)``; a :class:`CrossAttention` follows every residual block of the levels listed in
    ``cross_resolutions`` and the middle block. ``cond=None`` means the null (zero) embedding.

    Parameters
    ----------
    in_channels : int
    cond_dim : int
        Length of the embedding.
    tokens : int
        Number of context tokens (the paper uses one per embedding; see the module note).
    cross_resolutions : tuple of int
        Down-sampling factors of the levels that get cross-attention (default: all but the first).
    **unet_kwargs
        Passed to :class:`helpers.unet.UNet` (``base_channels``, ``channel_mults`` …).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        cond_dim: int,
        tokens: int = 4,
        cross_resolutions: tuple[int, ...] | None = None,
        **unet_kwargs,
    ):
        if (
            not isinstance(cond_dim, int)
            or cond_dim < 1
            or not isinstance(tokens, int)
            or tokens < 1
        ):
            raise ValueError(
                f"cond_dim and tokens must be positive ints, got {cond_dim!r}, {tokens!r}"
            )
        super().__init__(in_channels, cond_dim=None, **unet_kwargs)  # no global conditioning MLP
        self.cond_dim, self.tokens = cond_dim, tokens
        emb_dim = self.time_mlp[-1].out_features
        self.to_tokens = nn.Linear(cond_dim, tokens * emb_dim)  # (B, D) → (B, K·E)
        levels = len(self.down)
        cross_resolutions = (
            tuple(2**i for i in range(1, levels))
            if cross_resolutions is None
            else cross_resolutions
        )
        self.cross_levels = [i for i in range(levels) if 2**i in cross_resolutions]

        def xa(level: nn.Module) -> nn.ModuleList:  # one cross-attention per residual block
            return nn.ModuleList(CrossAttention(r.conv2.out_channels, emb_dim) for r in level.res)

        self.down_cross = nn.ModuleDict({str(i): xa(self.down[i]) for i in self.cross_levels})
        self.up_cross = nn.ModuleDict(
            {str(i): xa(self.up[levels - 1 - i]) for i in self.cross_levels}
        )
        self.mid_cross = CrossAttention(self.mid.res[0].conv2.out_channels, emb_dim)

    def context(self, cond: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """Context tokens ``(B, K, E)`` of the embeddings (zeros where ``cond`` is ``None``)."""
        cond = torch.zeros(batch, self.cond_dim, device=device) if cond is None else cond
        return self.to_tokens(cond.float()).reshape(batch, self.tokens, -1)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_inputs(self, x, t, y, cond)
        emb = self.embed(t, y, None)  # (B, E): time (and label)
        ctx = self.context(cond, x.shape[0], x.device)  # (B, K, E)
        levels, none = len(self.down), nn.ModuleList()
        h = self.conv_in(x)  # (B, base, H, W)
        skips = [h]
        for i, (level, down) in enumerate(zip(self.down, self.downsample, strict=True)):
            cross = self.down_cross[str(i)] if i in self.cross_levels else none
            for j, (res, attn) in enumerate(zip(level.res, level.attn, strict=True)):
                h = attn(res(h, emb))
                h = cross[j](h, ctx) if cross else h
                skips.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)  # (B, C, H/2, W/2)
                skips.append(h)
        h = self.mid.res[1](self.mid_cross(self.mid_attn(self.mid.res[0](h, emb)), ctx), emb)
        for k, (level, up) in enumerate(zip(self.up, self.upsample, strict=True)):
            i = levels - 1 - k  # resolution index of this up level
            cross = self.up_cross[str(i)] if i in self.cross_levels else none
            for j, (res, attn) in enumerate(zip(level.res, level.attn, strict=True)):
                h = attn(res(torch.cat([h, skips.pop()], dim=1), emb))  # concat skip on channels
                h = cross[j](h, ctx) if cross else h
            h = up(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, out_channels, H, W)

    @classmethod
    def from_config(
        cls, config: CondConfig, *, in_channels: int = 3, cond_dim: int
    ) -> CrossAttnUNet:
        """The network of a :class:`CondConfig`."""
        return cls(
            in_channels,
            cond_dim=cond_dim,
            tokens=config.tokens,
            base_channels=config.base_channels,
            channel_mults=config.channel_mults,
        )


def cfg_combine(eps_c: torch.Tensor, eps_u: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: ε = (1 + w)·ε_c − w·ε_u (Ho & Salimans; Graikos et al. eq. 3).

    ``w = 0`` is the plain conditional model; ``w = −1`` the unconditional one.

    Examples
    --------
    >>> cfg_combine(torch.tensor([1.0]), torch.tensor([0.0]), 3.0)
    tensor([4.])
    """
    if eps_c.shape != eps_u.shape:
        raise ValueError(
            f"eps_c and eps_u must have the same shape, got {tuple(eps_c.shape)} and {tuple(eps_u.shape)}"
        )
    return (1 + guidance) * eps_c - guidance * eps_u


def drop_embeddings(
    cond: torch.Tensor, p: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row of ``cond`` ``(B, D)`` by the null (zero) embedding with probability ``p``.

    The same rule :func:`helpers.training.train` applies with ``cond_drop=p``.

    Returns
    -------
    (Tensor ``(B, D)``, Tensor ``(B,)`` bool: which rows were dropped)
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    drop = (torch.rand(cond.shape[0], generator=generator) < p).to(cond.device)
    return torch.where(drop[:, None], torch.zeros_like(cond), cond), drop


def cosine_to_reference(
    samples: torch.Tensor, reference: torch.Tensor, others: torch.Tensor
) -> tuple[float, float]:
    """Mean cosine similarity of sample embeddings to their reference and to other patches.

    Parameters
    ----------
    samples : Tensor ``(R, S, D)``
        S sample embeddings for each of R references.
    reference : Tensor ``(R, D)``
    others : Tensor ``(M, D)``
        Embeddings of random other patches.

    Returns
    -------
    (mean cos to own reference, mean cos to the other patches); their difference is the gap.
    """
    if samples.ndim != 3 or reference.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(
            f"need samples (R, S, D) and reference (R, D), got {tuple(samples.shape)} and {tuple(reference.shape)}"
        )
    s = F.normalize(samples.float(), dim=-1)
    own = (s * F.normalize(reference.float(), dim=-1)[:, None]).sum(-1).mean()
    other = (s @ F.normalize(others.float(), dim=-1).T).mean()
    return float(own), float(other)
