"""Tests for helpers.gan: shapes, losses, a few stable steps, exact resume, input checks."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import checkpoint, gan

SMOKE = gan.GANConfig.preset("smoke")


def _images(n: int = 16, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_and_ranges(size):
    cfg = gan.GANConfig.preset("smoke", image_size=size)
    g_net, d_net = gan.build(cfg, seed=0)
    z = torch.randn(3, cfg.latent_dim)
    x = g_net(z)
    assert x.shape == (3, 1, size, size)
    assert x.abs().max() <= 1
    assert d_net(x).shape == (3,)
    samples = gan.sample(g_net, 5, seed=0, batch_size=2)
    assert samples.shape == (5, 1, size, size) and samples.min() >= 0 and samples.max() <= 1
    torch.testing.assert_close(samples, gan.sample(g_net, 5, seed=0))


def test_parameter_count_of_the_laptop_architecture():
    cfg = gan.GANConfig.preset("laptop")
    g_net, d_net = gan.build(cfg)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (cfg.image_size, cfg.n_blocks) == (32, 3)
    w, z = cfg.g_width, cfg.latent_dim
    widths = [4 * w, 2 * w, w]  # channels at 4×4, 8×8, 16×16; then the 32×32 image
    linear = z * widths[0] * 16 + widths[0] * 16
    convs = sum(9 * a * b + 2 * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    assert count(g_net) == linear + 2 * widths[0] + convs + 9 * w + 1
    d = cfg.d_width
    d_convs = 16 * (1 * d + d * 2 * d + 2 * d * 4 * d) + (d + 2 * d + 4 * d)
    assert count(d_net) == d_convs + 4 * d * 16 + 1


def test_build_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, _ = gan.build(SMOKE, seed=3)
    b, _ = gan.build(SMOKE, seed=3)
    c, _ = gan.build(SMOKE, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.project.weight, c.project.weight)


def test_losses_known_values():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])
    # hinge: mean(relu(1 - real)) + mean(relu(1 + fake)) = 0.25 + 0.5
    assert gan.discriminator_loss(real, fake, "hinge").item() == pytest.approx(0.75)
    assert gan.generator_loss(fake, "hinge").item() == pytest.approx(1.0)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = (sp(-2.0) + sp(-0.5)) / 2 + (sp(-2.0) + sp(0.0)) / 2
    assert gan.discriminator_loss(real, fake, "nonsaturating").item() == pytest.approx(
        expected, rel=1e-6
    )
    assert gan.generator_loss(fake, "nonsaturating").item() == pytest.approx(
        (sp(2.0) + sp(0.0)) / 2, rel=1e-6
    )


@pytest.mark.parametrize(("loss", "r1"), [("hinge", 0.0), ("nonsaturating", 1.0)])
def test_a_few_stable_steps(loss, r1):
    cfg = gan.GANConfig.preset("smoke", loss=loss, r1_gamma=r1)
    before_g, before_d = gan.build(cfg, seed=0)
    out = gan.train_gan(_images(), config=cfg, steps=4, seed=0, device="cpu", progress=False)
    assert out.steps == 4 and len(out.history["loss_d"]) == 4
    assert all(math.isfinite(v) for v in out.history["loss_d"] + out.history["loss_g"])
    assert not out.generator.training and not out.discriminator.training

    def moved(a, b):
        return any(
            not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True)
        )

    assert moved(out.generator, before_g) and moved(out.discriminator, before_d)
    x = gan.sample(out.generator, 4)
    assert torch.isfinite(x).all()


def test_interrupted_and_resumed_training_equals_uninterrupted(tmp_path):
    images = _images(24)
    full = gan.train_gan(images, config=SMOKE, steps=6, seed=1, device="cpu", progress=False)
    path = tmp_path / "gan.safetensors"
    first = gan.train_gan(
        images,
        config=SMOKE,
        steps=4,
        seed=1,
        device="cpu",
        progress=False,
        checkpoint_path=path,
        checkpoint_every=2,
    )
    assert checkpoint.read(path)[1]["step"] == 4
    resumed = gan.train_gan(
        images,
        config=SMOKE,
        steps=6,
        seed=1,
        device="cpu",
        progress=False,
        checkpoint_path=path,
        checkpoint_every=2,
    )
    assert resumed.history == full.history
    for a, b in ((resumed.generator, full.generator), (resumed.discriminator, full.discriminator)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
    # a run that is already complete is loaded, not retrained
    again = gan.train_gan(
        images, config=SMOKE, steps=6, seed=1, device="cpu", progress=False, checkpoint_path=path
    )
    assert again.history == full.history
    # the training time of every step is kept with the checkpoint, earlier runs included
    assert 0 < first.seconds < resumed.seconds == again.seconds
    assert torch.equal(gan.sample(again.generator, 3), gan.sample(full.generator, 3))


def test_checkpoint_holds_both_optimizers_and_stays_backward_compatible(tmp_path):
    path = tmp_path / "gan.safetensors"
    gan.train_gan(
        _images(), config=SMOKE, steps=2, device="cpu", progress=False, checkpoint_path=path
    )
    tensors, meta = checkpoint.read(path)
    assert set(meta["optimizers_param_groups"]) == {"generator", "discriminator"}
    assert any(k.startswith("optimizers/discriminator/") for k in tensors)
    # loading without the optimizers (the older call) still works
    g_net, d_net = gan.build(SMOKE)
    nets = torch.nn.ModuleDict({"generator": g_net, "discriminator": d_net})
    assert checkpoint.load_training_state(path, model=nets)["step"] == 2
    with pytest.raises(KeyError, match="no optimizer named 'critic'"):
        checkpoint.load_training_state(
            path, model=nets, optimizers={"critic": torch.optim.Adam(d_net.parameters())}
        )


def test_resume_with_another_config_is_refused(tmp_path):
    path = tmp_path / "gan.safetensors"
    gan.train_gan(
        _images(), config=SMOKE, steps=2, device="cpu", progress=False, checkpoint_path=path
    )
    with pytest.raises(ValueError, match="trained with config"):
        gan.train_gan(
            _images(),
            config=gan.GANConfig.preset("smoke", lr=1e-3),
            steps=4,
            device="cpu",
            progress=False,
            checkpoint_path=path,
        )


def test_input_and_config_errors():
    with pytest.raises(
        ValueError, match=r"images must have shape \(N, 1, 32, 32\).*\(4, 1, 64, 64\)"
    ):
        gan.train_gan(_images(4, 64), config=SMOKE, steps=1, progress=False)
    with pytest.raises(TypeError, match="ndarray"):
        gan.train_gan(_images(4).numpy(), config=SMOKE, steps=1, progress=False)
    with pytest.raises(ValueError, match="image_size must be 32 or 64"):
        gan.GANConfig(image_size=48)
    with pytest.raises(ValueError, match="loss must be one of"):
        gan.GANConfig(loss="wasserstein")
    with pytest.raises(ValueError, match="betas"):
        gan.GANConfig(betas=(0.5, 1.5))
    with pytest.raises(ValueError, match="unknown profile"):
        gan.GANConfig.preset("tiny")
    assert gan.GANConfig.preset("gpu").image_size == 64


def test_nan_integer_out_of_range_and_empty_images_are_refused():
    x = _images(4)
    x[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"images holds 1 non-finite"):
        gan.train_gan(x, config=SMOKE, steps=1, progress=False)
    with pytest.raises(TypeError, match=r"images.float\(\) / 255"):
        gan.train_gan((_images(4) * 255).to(torch.uint8), config=SMOKE, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*to 25"):
        gan.train_gan(_images(4) * 255, config=SMOKE, steps=1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        gan.train_gan(_images(4)[:0], config=SMOKE, steps=1, progress=False)
    g, _ = gan.build(SMOKE)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        gan.sample(g, 3, batch_size=0)


def test_a_damaged_gan_cache_is_trained_again_and_a_user_file_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "g.safetensors"
    first = gan.train_gan(_images(), config=SMOKE, steps=2, device="cpu", progress=False,
                          checkpoint_path=cached)  # fmt: skip
    cached.write_bytes(cached.read_bytes()[:50])
    again = gan.train_gan(_images(), config=SMOKE, steps=2, device="cpu", progress=False,
                          checkpoint_path=cached)  # fmt: skip
    assert again.history == first.history
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"\x00" * 10)
    with pytest.raises(checkpoint.CheckpointError, match=str(mine)):
        gan.train_gan(_images(), config=SMOKE, steps=2, device="cpu", progress=False,
                      checkpoint_path=mine)  # fmt: skip
