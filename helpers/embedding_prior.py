"""A label-conditional diffusion model in embedding space: label (or short prompt) → embeddings.

Graikos et al. (CVPR 2024) generate large images from text with an auxiliary diffusion model that
samples SSL embeddings given a text embedding; the image model then turns the embeddings into
pixels. At toy scale: a small MLP denoiser over embeddings, conditioned on a class label (with a
null label for classifier-free guidance), trained with :func:`helpers.diffusion_training.train` and sampled
with :func:`helpers.diffusion.sample` — an embedding is treated as a ``(D, 1, 1)`` "image".
Prompts come from a fixed vocabulary (:data:`VOCABULARY`) that maps words to labels.

Examples
--------
>>> import torch
>>> from helpers import embedding_prior
>>> net = embedding_prior.EmbeddingDenoiser(8, num_classes=2, hidden=32)
>>> net(torch.randn(3, 8, 1, 1), torch.tensor([1, 2, 3]), y=torch.tensor([0, 1, 2])).shape
torch.Size([3, 8, 1, 1])
>>> embedding_prior.prompt_to_label("a patch with brown DAB stain")
1
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import diffusion, diffusion_training
from .sinusoidal import sinusoidal_embedding
from .unet import check_labels

__all__ = ["VOCABULARY", "EmbeddingDenoiser", "EmbeddingPrior", "prompt_to_label"]

VOCABULARY: dict[str, int] = {
    "negative": 0, "blue": 0, "haematoxylin": 0, "hematoxylin": 0, "unstained": 0, "nuclei": 0,
    "positive": 1, "brown": 1, "dab": 1, "stained": 1, "immunopositive": 1,
}  # fmt: skip
"""Prompt words → histology labels (0 = DAB-negative, 1 = DAB-positive)."""


def prompt_to_label(prompt: str) -> int:
    """The label named by a short prompt (the last vocabulary word in it wins).

    Raises
    ------
    ValueError
        When no word of the prompt is in :data:`VOCABULARY`.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    words = [w.strip(".,;:!?").lower() for w in prompt.replace("-", " ").split()]
    labels = [VOCABULARY[w] for w in words if w in VOCABULARY]
    if not labels:
        raise ValueError(
            f"no word of {prompt!r} is in the vocabulary; use one of {sorted(VOCABULARY)}"
        )
    return labels[-1]


class EmbeddingDenoiser(nn.Module):
    """ε̂ = MLP([z_t, emb(t) + emb(y)]) for embeddings shaped ``(B, D, 1, 1)``.

    Label ``num_classes`` is the null label (as in :class:`helpers.unet.UNet`).
    """

    def __init__(self, dim: int, *, num_classes: int, hidden: int = 256):
        super().__init__()
        self.dim, self.num_classes, self.hidden = dim, num_classes, hidden
        self.label_emb = nn.Embedding(num_classes + 1, hidden)
        self.time_mlp = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden),
                nn.Linear(hidden, hidden),
                nn.SiLU(),
                nn.Linear(hidden, hidden),
            )
            for _ in range(3)
        )
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.dim, 1, 1):
            raise ValueError(f"x must be (B, {self.dim}, 1, 1), got {tuple(x.shape)}")
        if cond is not None:
            raise ValueError("EmbeddingDenoiser takes labels y, not a conditioning vector")
        if y is None:
            y = torch.full_like(t, self.num_classes, dtype=torch.long)  # the null label
        check_labels(y, x.shape[0], self.num_classes)
        c = self.time_mlp(sinusoidal_embedding(t, self.hidden)) + self.label_emb(y)  # (B, hidden)
        h = self.inp(x.flatten(1)) + c
        for block in self.blocks:
            h = h + block(h + c)  # residual MLP blocks
        return self.out(F.silu(h)).reshape(x.shape)  # (B, D, 1, 1)


class EmbeddingPrior:
    """Learn p(embedding | label) and sample from it.

    Embeddings are standardised per dimension and scaled into ``[-1, 1]`` for training; samples
    are mapped back and, when the training embeddings were unit length, renormalised.

    Parameters
    ----------
    dim, num_classes : int
    hidden : int
    T : int
        Diffusion steps of the prior's schedule (cosine).
    """

    def __init__(self, dim: int, num_classes: int, *, hidden: int = 256, T: int = 200):
        self.net = EmbeddingDenoiser(dim, num_classes=num_classes, hidden=hidden)
        self.schedule = diffusion.Schedule.make("cosine", T=T)
        self.mean = torch.zeros(dim)
        self.scale = torch.ones(dim)
        self.unit = False
        self.ema: nn.Module | None = None

    def fit(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        *,
        steps: int = 1500,
        batch_size: int = 128,
        seed: int = 0,
        progress: bool = True,
    ) -> list[float]:
        """Train on ``embeddings`` ``(N, D)`` with ``labels`` ``(N,)``; returns the loss history."""
        if embeddings.ndim != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(
                f"need embeddings (N, D) and labels (N,), got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
            )
        e = embeddings.float()
        self.unit = bool(torch.allclose(e.norm(dim=1), torch.ones(len(e)), atol=1e-3))
        self.mean = e.mean(0)
        z = (e - self.mean) / e.std(0).clamp_min(1e-6)
        self.scale = e.std(0).clamp_min(1e-6) * z.abs().max()  # z / max|z| lies in [-1, 1]
        x = ((e - self.mean) / self.scale)[:, :, None, None]  # (N, D, 1, 1)
        result = diffusion_training.train(
            self.net,
            x,
            schedule=self.schedule,
            steps=steps,
            batch_size=batch_size,
            lr=1e-3,
            labels=labels.long(),
            cond_drop=0.1,
            warmup=50,
            ema_decay=0.995,
            seed=seed,
            progress=progress,
        )
        self.ema = result.ema
        return result.loss_history

    @torch.no_grad()
    def sample(
        self, labels: torch.Tensor, *, guidance: float = 1.0, steps: int = 50, seed: int = 0
    ) -> torch.Tensor:
        """Embeddings ``(B, D)`` for ``labels`` ``(B,)``."""
        if self.ema is None:
            raise RuntimeError("call fit() before sample()")
        labels = torch.as_tensor(labels, dtype=torch.long)
        x = diffusion.sample(
            self.ema,
            (len(labels), self.net.dim, 1, 1),
            schedule=self.schedule,
            steps=steps,
            y=labels,
            guidance=guidance,
            seed=seed,
            clip_x0=True,
            as_images=False,
        )
        e = x.flatten(1).cpu() * self.scale + self.mean
        return F.normalize(e, dim=1) if self.unit else e
