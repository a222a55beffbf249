"""Image classifiers: one training loop, a tiny CNN, prediction and accuracy.

The kit trains classifiers in several places — a judge that checks whether generated digits show
the requested class (notebook 03), patch classifiers for data augmentation (04), the tiny ViT of
notebook 02 — and all of them go through :func:`fit`: AdamW with cross-entropy, a learning-rate
schedule (one-cycle, or linear warm-up then cosine decay), optional random shifts of each image,
every random draw from one seed. :func:`train_classifier` is :func:`fit` on a :class:`SmallCNN`;
:func:`helpers.vit.train_vit` is :func:`fit` on a ViT.

Examples
--------
>>> import torch
>>> from helpers import classifier
>>> x, y = torch.rand(32, 1, 16, 16), torch.arange(32) % 2
>>> net = classifier.train_classifier(x, y, epochs=1, progress=False)
>>> 0.0 <= classifier.accuracy(net, x, y) <= 1.0
True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .runtime import detect_device, seeded
from .validation import as_device, check_finite, check_floating, check_int, check_seed

__all__ = [
    "SCHEDULES",
    "SmallCNN",
    "accuracy",
    "fit",
    "predict",
    "random_shift",
    "train_classifier",
]

SCHEDULES = ("onecycle", "warmup_cosine")
"""Learning-rate schedules of :func:`fit`."""


class SmallCNN(nn.Module):
    """Three 3×3 conv blocks (two with max-pooling), global average pooling, a linear layer.

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Channels of the first block (the others have twice as many).
    seed : int, optional
        Initialise the weights from this seed without touching the global random state.
    """

    def __init__(
        self, in_channels: int, num_classes: int, width: int = 32, *, seed: int | None = None
    ):
        super().__init__()
        with seeded(seed):
            self.features = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            )  # fmt: skip
            self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, num_classes)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` ``(B, C, H, W)`` by its own random offset of up to
    ``max_shift`` pixels in each direction (reflect padding keeps the borders natural)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def _check_data(images: torch.Tensor, labels: torch.Tensor, num_classes: int | None) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images must be an (N, C, H, W) tensor, got {getattr(images, 'shape', type(images).__name__)}"
        )
    if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
        raise ValueError(
            f"need one label per image: images {tuple(images.shape)}, labels "
            f"{getattr(labels, 'shape', type(labels).__name__)}"
        )
    if labels.dtype != torch.long:
        raise TypeError(f"labels must be int64 class indices, got {labels.dtype}")
    if images.numel() == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)}); need at least one image")
    check_floating(
        images, "images", "convert integer images to [0, 1] first, e.g. images.float() / 255"
    )
    check_finite(images, "images")
    if int(labels.min()) < 0:
        raise ValueError(f"labels must be class indices ≥ 0, got {int(labels.min())}")
    if num_classes is not None and int(labels.max()) >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got {int(labels.min())}…{int(labels.max())}"
        )


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    schedule: str = "onecycle",
    max_shift: int = 0,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> list[float]:
    """Train ``model`` in place to classify ``images`` with cross-entropy; the kit's one loop.

    Each epoch visits the images in a fresh random order in batches; each batch is optionally
    shifted (:func:`random_shift`), and AdamW takes one step at the scheduled learning rate.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, C, H, W)`` to logits ``(B, classes)``.
    images : Tensor ``(N, C, H, W)``
        Inputs in the range the model will later see (e.g. ``[0, 1]``).
    labels : Tensor ``(N,)`` int64
    epochs, batch_size : int
    lr, weight_decay : float
        Peak learning rate and AdamW's decoupled weight decay (0: plain Adam).
    schedule : {"onecycle", "warmup_cosine"}
        ``"onecycle"``: PyTorch's ``OneCycleLR``; ``"warmup_cosine"``: linear warm-up over the
        first 5 % of the steps, then cosine decay to 0 (as ViT training does).
    max_shift : int
        Random shifts of up to this many pixels (0: no augmentation).
    seed : int
        Seed of the order and of the shifts.
    device : optional
        Default: where the model is.
    progress : bool
        Show a progress bar with the loss.
    callback : callable, optional
        Called as ``callback(epoch, model)`` after each epoch (``epoch`` counts from 1), with the
        model in eval mode and gradients off (e.g. to measure a learning curve on held-out data);
        training then resumes in train mode.

    Returns
    -------
    list of float
        The mean training loss of each epoch. The model is left in eval mode.
    """
    _check_data(images, labels, None)
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not lr > 0 or not weight_decay >= 0 or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(
            f"need lr > 0, weight_decay ≥ 0 and an int max_shift ≥ 0; got {lr}, {weight_decay}, {max_shift!r}"
        )
    check_seed(seed)
    device = as_device(device) or next(model.parameters()).device
    model.to(device)
    dtype = next(model.parameters()).dtype  # float16 images feed a float32 model, and so on
    gen = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    total = epochs * math.ceil(n / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=total)
    else:
        warmup = max(1, total // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: (
                min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
            ),
        )
    losses: list[float] = []
    model.train()
    bar = tqdm(range(epochs), disable=not progress, desc="classifier")
    for epoch in bar:
        order = torch.randperm(n, generator=gen)
        running = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            x = images[idx]
            if max_shift:
                x = random_shift(x, max_shift, gen)
            loss = F.cross_entropy(model(x.to(device, dtype)), labels[idx].to(device))
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"the classifier loss became {loss.item()} in epoch {len(losses) + 1} of "
                    f"{epochs} (batch from image {start}); lower lr"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
        losses.append(running / n)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if callback is not None:
            model.eval()
            with torch.no_grad():
                callback(epoch + 1, model)
            model.train()
    model.eval()
    return losses


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    epochs: int = 15,
    batch_size: int = 64,
    lr: float = 3e-3,
    augment: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> SmallCNN:
    """A :class:`SmallCNN` trained by :func:`fit` (one-cycle schedule).

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)``
    labels : Tensor ``(N,)`` int64
    num_classes : int, optional
        Default ``labels.max() + 1``.
    epochs, batch_size, lr : int, int, float
    augment : bool
        Random shifts of up to one pixel, which make the classifier less brittle on samples.
    seed : int
        Seed of initialisation, order and augmentation.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool

    Returns
    -------
    SmallCNN
        In eval mode.
    """
    check_int(num_classes, "num_classes", minimum=1, none_ok=True)  # 0 is not "from the labels"
    _check_data(images, labels, num_classes)
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    net = SmallCNN(images.shape[1], num_classes, seed=seed)
    net.to(as_device(device) or detect_device())
    fit(net, images, labels, epochs=epochs, batch_size=batch_size, lr=lr, schedule="onecycle",
        max_shift=1 if augment else 0, seed=seed, progress=progress)  # fmt: skip
    return net.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of each image, ``(N,)`` int64 on the CPU (model in eval mode)."""
    check_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    model.eval()
    out = [
        model(images[k : k + batch_size].to(device)).argmax(1).cpu()
        for k in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` whose predicted class equals ``labels``."""
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"need one label per image, got {tuple(labels.shape)} for {images.shape[0]} images"
        )
    return float((predict(model, images) == labels.cpu()).float().mean())
