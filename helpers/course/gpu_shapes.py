"""Every network of the gpu profile, built at its gpu size, and its training memory estimated.

The gpu profile's settings are only read on a laptop: a wrong shape or a size that does not fit
would first appear on an instructor's GPU. :func:`configurations` lists each network a notebook
trains under a profile — built from the same presets the notebook uses, with an example batch —
so that a test can build and step every one of them on a CPU (``tests/test_gpu_shapes.py``), and
:func:`estimate` gives each one's peak training memory at its profile's batch size:

* parameters, gradients and the two AdamW moments (4 × the parameters' bytes), plus one EMA copy
  where the notebook keeps one;
* activations: the bytes autograd saves for the backward pass, measured on one example
  (``torch.autograd.graph.saved_tensors_hooks``, each storage counted once), times the batch.

It is an estimate in float32 (bf16 autocast roughly halves the activations), not a measurement:
allocator slack, cuDNN workspaces and the CUDA context (≈ 0.5 GB) come on top.
``python -m helpers.course.gpu_shapes`` prints the table against 16, 40 and 80 GB cards.

Examples
--------
>>> from helpers.course import gpu_shapes
>>> [c.name for c in gpu_shapes.configurations("smoke")][:2]
['01 DIP skip network', '02 ViT (digits)']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .. import (
    dip,
    gan,
    latent,
    ood,
    radiomics,
    self_supervised,
    svnr,
    text_conditioning,
    text_to_image,
    unet,
    vit,
)
from . import experiments

__all__ = ["CARDS_GB", "Configuration", "Estimate", "configurations", "estimate", "table"]

CARDS_GB: tuple[int, ...] = (16, 40, 80)
"""The cards the estimates are compared with (GB = 10⁹ bytes)."""


@dataclass(frozen=True)
class Configuration:
    """One network of one notebook under one profile.

    Attributes
    ----------
    notebook : str
        Two-digit prefix of the notebook that trains it.
    name : str
        What it is (``"03 digits U-Net"``).
    build : callable
        ``build() -> nn.Module``, the network as the notebook builds it.
    inputs : callable
        ``inputs(batch) -> tuple`` of positional arguments of the forward pass, on the CPU.
    batch_size : int
        Examples per training step under the profile.
    ema : bool
        Whether the notebook keeps an exponential moving average of the weights.
    """

    notebook: str
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[int], tuple[torch.Tensor, ...]]
    batch_size: int
    ema: bool = False


@dataclass(frozen=True)
class Estimate:
    """Estimated peak training memory of a :class:`Configuration` (bytes, float32)."""

    name: str
    parameters: int
    batch_size: int
    state_bytes: int
    activation_bytes_per_example: int
    finite: bool = True
    """Whether the output, the gradients and the weights after one AdamW step were finite."""

    @property
    def peak_bytes(self) -> int:
        """Weights, gradients, optimiser (and EMA) state, plus one batch of activations."""
        return self.state_bytes + self.activation_bytes_per_example * self.batch_size

    def fits(self, card_gb: float) -> bool:
        """Whether the estimate is below ``card_gb`` GB less 10 % (context, allocator slack)."""
        return self.peak_bytes < 0.9 * card_gb * 1e9


def _images(channels: int, size: int) -> Callable[[int], tuple[torch.Tensor, ...]]:
    return lambda b: (torch.rand(b, channels, size, size),)


def _diffusion(
    channels: int, size: int, *, classes: int = 0, cond_dim: int = 0
) -> Callable[[int], tuple[torch.Tensor, ...]]:
    def inputs(b: int) -> tuple[torch.Tensor, ...]:
        x = torch.randn(b, channels, size, size)
        t = torch.randint(0, 10, (b,))
        y = torch.randint(0, classes, (b,)) if classes else None
        cond = torch.randn(b, cond_dim) if cond_dim else None
        return (x, t, y, cond)

    return inputs


class _GANStep(nn.Module):
    """Generator and discriminator in one module: a step through both (``D(G(z))``)."""

    def __init__(self, config: gan.GANConfig):
        super().__init__()
        self.generator, self.discriminator = gan.build(config, seed=0)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.generator(z))


class _FINStep(nn.Module):
    """A FIN's pretraining forward pass (windows → six features) and its classifier on slices."""

    def __init__(self, config: radiomics.FINConfig):
        super().__init__()
        self.fin = radiomics.FIN(config.hidden, config.window, config.stride, seed=0)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.fin(windows)


class _VAEStep(nn.Module):
    """The KL autoencoder's training pass: encode, sample the latent, decode."""

    def __init__(self, config: latent.AutoencoderConfig):
        super().__init__()
        self.vae = latent.make_autoencoder(config, seed=0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.vae(images, sample_posterior=True).sample


class _CLIPStep(nn.Module):
    """The CLIP-style encoder's training pass: both towers on a batch of pairs."""

    def __init__(self, config: text_conditioning.CLIPConfig):
        super().__init__()
        words = [f"w{i}" for i in range(64)]  # a tokenizer of the notebook's size class
        tokenizer = text_conditioning.train_tokenizer(
            [" ".join(words[i : i + 8]) for i in range(0, 56)],
            vocab_size=config.vocab_size,
            context=config.context,
        )
        self.clip = text_conditioning.TextImageCLIP(tokenizer, config, seed=0)
        self.vocab = len(tokenizer)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.clip.encode_image(images), self.clip.encode_text(ids % self.vocab)


def configurations(profile: str = "gpu") -> list[Configuration]:
    """Every network the notebooks train under ``profile``, as the notebooks build it.

    Step counts play no part (``COURSE_STEP_SCALE`` changes none of these shapes).
    """
    out: list[Configuration] = []
    d = dip.DIPConfig.preset(profile)
    out.append(Configuration(
        "01", "01 DIP skip network",
        lambda: dip.SkipNet(d.input_channels, 3, scales=d.scales, channels=d.channels,
                            skip_channels=d.skip_channels, upsample=d.upsample, pad=d.pad, seed=0),
        _images(d.input_channels, d.size), 1, ema=True,
    ))  # fmt: skip
    v1 = vit.ViTConfig.preset(profile, img_size=16, patch_size=4, in_chans=1, num_classes=10)
    out.append(Configuration("02", "02 ViT (digits)", lambda: vit.TinyViT(v1, seed=0),
                             _images(1, 16), v1.batch_size))  # fmt: skip
    v2 = vit.ViTConfig.preset(profile, img_size=32, patch_size=8, in_chans=3, num_classes=2)
    out.append(Configuration("02", "02 ViT (histology crops)", lambda: vit.TinyViT(v2, seed=0),
                             _images(3, 32), v2.batch_size))  # fmt: skip
    c3 = experiments.DDPMConfig.preset(profile)
    out.append(Configuration(
        "03", "03 digits U-Net",
        lambda: unet.UNet(1, base_channels=c3.base_channels, channel_mults=c3.channel_mults,
                          attn_resolutions=c3.attn_resolutions, num_classes=10, seed=0),
        _diffusion(1, c3.image_size, classes=10), c3.batch_size, ema=True,
    ))  # fmt: skip
    s4 = self_supervised.SSLConfig.preset(profile)
    out.append(Configuration(
        "04", "04 SSL encoder",
        lambda: self_supervised.Encoder(3, s4.width, s4.dim, seed=0),
        _images(3, s4.size), 2 * s4.batch_size,  # two views of each patch
    ))  # fmt: skip
    c4 = experiments.CondConfig.preset(profile)
    out.append(Configuration(
        "04", "04 SSL-conditioned U-Net",
        lambda: unet.UNet(3, cond_dim=s4.dim, **c4.unet_kwargs(), seed=0),  # type: ignore[arg-type]
        _diffusion(3, c4.size, cond_dim=s4.dim), c4.batch_size, ema=True,
    ))  # fmt: skip
    m5 = experiments.MemorizationExperiment.preset(profile)
    out.append(Configuration(
        "05", "05 diffusion U-Net",
        lambda: unet.UNet(1, base_channels=m5.base_channels, channel_mults=m5.channel_mults,
                          attn_resolutions=(), seed=0),
        _diffusion(1, m5.size), m5.batch_size, ema=True,
    ))  # fmt: skip
    g5 = gan.GANConfig.preset(profile, steps=m5.gan_stages[-1])
    out.append(Configuration("05", "05 GAN (generator → discriminator)", lambda: _GANStep(g5),
                             lambda b: (torch.randn(b, g5.latent_dim),), g5.batch_size, ema=True))  # fmt: skip
    out.append(Configuration(
        "05", "05 SSL encoder",
        lambda: self_supervised.Encoder(1, m5.ssl_width, m5.ssl_dim, seed=0),
        _images(1, m5.size), 2 * m5.ssl_batch,
    ))  # fmt: skip
    a6 = latent.AutoencoderConfig.preset(profile)
    out.append(Configuration("06", "06 KL autoencoder", lambda: _VAEStep(a6), _images(3, a6.size),
                             a6.batch_size))  # fmt: skip
    k6 = text_conditioning.CLIPConfig.preset(profile)
    out.append(Configuration(
        "06", "06 CLIP-style text and image encoders", lambda: _CLIPStep(k6),
        lambda b: (torch.rand(b, 3, a6.size, a6.size), torch.randint(0, 10**6, (b, k6.context))),
        k6.batch_size,
    ))  # fmt: skip
    d6 = text_to_image.LatentDiffusionConfig.preset(profile)
    captions = 64  # caption states cross-attended to (their number does not change the shapes)
    out.append(Configuration(
        "06", "06 text-conditioned latent U-Net",
        lambda: text_to_image.CaptionTableUNet(
            text_to_image.make_unet(d6, in_channels=a6.latent_channels, sample_size=a6.latent_size,
                                    cross_attention_dim=k6.hidden, seed=0),
            torch.randn(captions + 1, k6.context, k6.hidden)),
        _diffusion(a6.latent_channels, a6.latent_size, classes=captions), d6.batch_size, ema=True,
    ))  # fmt: skip
    c7 = svnr.SVNRConfig.preset(profile)
    r7 = experiments.RealNoiseExperiment.preset(profile)
    out.append(Configuration("07", "07 SVNR U-Net", lambda: svnr.make_unet(c7, seed=0),
                             _diffusion(2, c7.size), c7.batch_size, ema=True))  # fmt: skip
    out.append(Configuration(
        "07", "07 DIP baseline",
        lambda: dip.SkipNet(8, 1, scales=r7.dip_scales, channels=r7.dip_channels, skip_channels=4,
                            seed=0),
        _images(8, c7.size), 1,
    ))  # fmt: skip
    e8 = experiments.MeasuringExperiment.preset(profile)
    v8 = vit.ViTConfig.preset(profile, img_size=e8.size, patch_size=e8.size // 4, in_chans=3,
                              num_classes=2, depth=e8.vit_depth)  # fmt: skip
    out.append(Configuration("08", "08 ViT (histology)", lambda: vit.TinyViT(v8, seed=0),
                             _images(3, e8.size), v8.batch_size))  # fmt: skip
    a8 = ood.AEConfig.preset(profile)
    out.append(Configuration("08", "08 slice autoencoder",
                             lambda: ood.SliceAutoencoder(a8.width, a8.latent, seed=0),
                             _images(1, e8.vol_size), a8.batch_size))  # fmt: skip
    f8 = radiomics.FINConfig.preset(profile)
    out.append(Configuration("08", "08 FIN (windows)", lambda: _FINStep(f8),
                             _images(1, f8.window), f8.batch_size))  # fmt: skip
    out.append(Configuration(
        "08", "08 FIN classifier (slices)",
        lambda: radiomics.FINClassifier(radiomics.FIN(f8.hidden, f8.window, f8.stride, seed=0), seed=0),
        _images(1, e8.slice_size), 64,  # the classifiers' batch (helpers.classifier.fit)
    ))  # fmt: skip
    return out


def _loss(output: torch.Tensor | tuple) -> torch.Tensor:
    if isinstance(output, tuple | list):
        return sum(_loss(o) for o in output)  # type: ignore[return-value]
    return output.float().square().mean()


def estimate(config: Configuration, *, batch: int = 2) -> Estimate:
    """Build ``config``'s network, run one training step (forward, backward, AdamW) on ``batch``
    examples (CPU), and estimate its peak training memory at ``config.batch_size`` (two examples by default:
    batch normalisation needs more than one).

    Raises
    ------
    ValueError
        ``batch`` < 1.
    """
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    net = config.build().train()
    args = config.inputs(batch)
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    params = [p for p in net.parameters() if p.requires_grad]
    weights = {p.untyped_storage().data_ptr() for p in params}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(*args)
    loss = _loss(out)
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]  # a projection head may sit unused
    finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(g).all()) for g in grads)
    torch.optim.AdamW(params, lr=1e-4).step()
    finite = finite and all(bool(torch.isfinite(p).all()) for p in params)
    activations = sum(n for ptr, n in seen.items() if ptr not in weights)
    n_params = sum(p.numel() for p in params)
    copies = 4 + (1 if config.ema else 0)  # weights, gradients, AdamW's two moments, EMA
    return Estimate(
        name=config.name,
        parameters=n_params,
        batch_size=config.batch_size,
        state_bytes=copies * 4 * n_params,
        activation_bytes_per_example=-(-activations // batch),
        finite=finite,
    )


def table(estimates: list[Estimate]) -> str:
    """A text table: parameters, batch, estimated peak memory and whether it fits each card."""
    cards = " ".join(f"{c:>5d}GB" for c in CARDS_GB)
    lines = [f"{'network':38s} {'params':>10s} {'batch':>6s} {'peak GB':>8s} {cards}"]
    for e in estimates:
        fits = " ".join(f"{'fits' if e.fits(c) else 'NO':>7s}" for c in CARDS_GB)
        lines.append(
            f"{e.name:38s} {e.parameters:>10,d} {e.batch_size:>6d} {e.peak_bytes / 1e9:>8.2f} {fits}"
        )
    return "\n".join(lines)


def main() -> None:  # pragma: no cover - a command
    """Print the gpu profile's memory estimates (``python -m helpers.course.gpu_shapes``)."""
    print("estimated peak training memory, float32, gpu profile (estimated, not measured)")
    print(table([estimate(c) for c in configurations("gpu")]))


if __name__ == "__main__":  # pragma: no cover
    main()
