"""A tiny convolutional classifier, used to check that generated images show the requested class.

Train it on real images with :func:`train_classifier`, then score samples with :func:`accuracy`
(the share of images classified as their intended label) or :func:`predict`.

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

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["SmallCNN", "accuracy", "predict", "train_classifier"]


class SmallCNN(nn.Module):
    """Two 3×3 conv blocks with max-pooling, global average pooling, a linear layer."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, num_classes)


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
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> SmallCNN:
    """Fit :class:`SmallCNN` with Adam and cross-entropy.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)``
        Inputs in the range the classifier will later see (e.g. ``[0, 1]``).
    labels : Tensor ``(N,)`` int64
    num_classes : int, optional
        Default ``labels.max() + 1``.
    epochs, batch_size, lr : int, int, float
    augment : bool
        Random shifts of up to one pixel, which make the classifier less brittle on samples.
    seed : int
        Seed of initialisation, shuffling and augmentation.
    device : str or torch.device
    progress : bool

    Returns
    -------
    SmallCNN
        In eval mode.
    """
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"need images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if labels.dtype != torch.long:
        raise TypeError(f"labels must be int64, got {labels.dtype}")
    num_classes = num_classes or int(labels.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = SmallCNN(images.shape[1], num_classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, lr, total_steps=epochs * -(-len(images) // batch_size)
    )
    x_all, y_all = images.to(device), labels.to(device)
    net.train()
    for _ in tqdm(range(epochs), disable=not progress, desc="classifier"):
        order = torch.randperm(len(images), generator=gen).to(device)
        for k in range(0, len(images), batch_size):
            idx = order[k : k + batch_size]
            x = x_all[idx]
            if augment:
                dx, dy = torch.randint(-1, 2, (2,), generator=gen).tolist()
                x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(net(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of each image, ``(N,)`` int64."""
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
