"""Training a tiny ViT classifier and reading its attention maps.

Two ways to see where the class token looks: the last layer's class-token attention, averaged
over heads, and attention rollout (Abnar & Zuidema, 2020), which multiplies the head-averaged
attention of all layers, each mixed half-and-half with the identity for the residual path.

References
----------
Abnar, S. and Zuidema, W. "Quantifying Attention Flow in Transformers." ACL 2020.

Examples
--------
>>> import torch
>>> from helpers import vit, vit_train
>>> model = vit.TinyViT(vit.ViTConfig(img_size=16, patch_size=4, depth=2))
>>> tuple(vit_train.attention_rollout(model, torch.rand(3, 1, 16, 16)).shape)
(3, 4, 4)
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .vit import TinyViT, ViTConfig

logger = logging.getLogger(__name__)


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


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ViTConfig,
    *,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    augment: bool = False,
    progress: bool = True,
) -> tuple[TinyViT, list[float]]:
    """Train a :class:`~helpers.vit.TinyViT` with AdamW, cosine learning rate and cross-entropy.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` in [0, 1]
    labels : Tensor ``(N,)`` int64
    config : ViTConfig
        Architecture and training settings.
    generator : torch.Generator
        Seeds initialisation, shuffling and augmentation (CPU generator).
    device : str or torch.device
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
    with torch.random.fork_rng(devices=[]):  # seed the initialisation without touching global state
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        model = TinyViT(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
        ),
    )
    losses: list[float] = []
    bar = tqdm(range(config.epochs), disable=not progress, desc="train ViT")
    model.train()
    for _ in bar:
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for start in range(0, n, config.batch_size):
            idx = order[start : start + config.batch_size]
            x = images[idx]
            if augment:
                x = _random_shift(x, 2, generator)
            x, y = x.to(device), labels[idx].to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
        losses.append(running / n)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    logger.info("trained TinyViT for %d epochs, final loss %.4f", config.epochs, losses[-1])
    return model, losses


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels (reflect padding)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


@torch.no_grad()
def predict(model: TinyViT, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Predicted class indices ``(N,)`` (on the CPU)."""
    device = next(model.parameters()).device
    model.eval()
    out = [
        model(images[i : i + batch_size].to(device)).argmax(-1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def accuracy(model: TinyViT, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` classified as ``labels``."""
    return float((predict(model, images) == labels.cpu()).float().mean())


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
