"""The training loop: the loss falls, checkpoints resume exactly, bad input is refused."""

from __future__ import annotations

import pytest
import torch

from helpers import checkpoint, classifier, diffusion_training
from helpers.diffusion import Schedule
from helpers.unet import UNet


def _data(n: int = 32, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = torch.stack([xx, yy])[labels][:, None]  # two gradients: horizontal / vertical
    return (base + 0.05 * torch.randn(base.shape, generator=g)).clamp(-1, 1), labels


def _net(**kw) -> UNet:
    return UNet(1, base_channels=8, channel_mults=(1, 2), attn_resolutions=(), seed=0, **kw)


def test_a_few_steps_lower_the_loss():
    x, y = _data()
    s = Schedule.make("linear", T=100)
    result = diffusion_training.train(
        _net(num_classes=2),
        x,
        schedule=s,
        steps=60,
        batch_size=16,
        lr=3e-3,
        labels=y,
        warmup=5,
        progress=False,
    )
    first, last = sum(result.loss_history[:10]) / 10, sum(result.loss_history[-10:]) / 10
    assert len(result.loss_history) == 60
    assert last < 0.7 * first
    assert not any(p.requires_grad for p in result.ema.parameters())


class _Interrupt(RuntimeError):
    pass


def _crash_after(net: UNet, calls: int) -> UNet:
    """Make ``net`` raise on its ``calls + 1``-th forward call, like a job killed mid-training."""
    forward, count = net.forward, [0]

    def crashing(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise _Interrupt("simulated crash")
        return forward(*args, **kwargs)

    net.forward = crashing
    return net


def test_interrupted_and_resumed_training_ends_with_the_same_weights(tmp_path):
    x, y = _data()
    s = Schedule.make("cosine", T=50)
    kw = dict(
        schedule=s,
        steps=12,
        batch_size=8,
        labels=y,
        checkpoint_every=4,
        warmup=3,
        seed=5,
        progress=False,
        device="cpu",
    )
    full = diffusion_training.train(
        _net(num_classes=2), x, checkpoint_path=tmp_path / "full.safetensors", **kw
    )

    path = tmp_path / "run.safetensors"
    crashing = _crash_after(
        _net(num_classes=2), calls=10
    )  # dies during step 11, last checkpoint at 8
    with pytest.raises(_Interrupt):
        diffusion_training.train(crashing, x, checkpoint_path=path, **kw)
    assert checkpoint.read(path)[1]["step"] == 8
    resumed = diffusion_training.train(
        _net(num_classes=2), x, checkpoint_path=path, resume=True, **kw
    )

    assert resumed.resumed_from == 8
    assert resumed.loss_history == pytest.approx(full.loss_history, rel=1e-6)
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(full.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_staged_training_retraces_one_run(tmp_path):
    """Stopping at 5 and 9 steps of a 12-step schedule, then finishing, gives the one run."""
    x, y = _data()
    s = Schedule.make("linear", T=50)
    kw = dict(schedule=s, batch_size=8, labels=y, warmup=3, seed=2, progress=False, device="cpu")
    full = diffusion_training.train(_net(num_classes=2), x, steps=12, **kw)
    path = tmp_path / "staged.safetensors"
    for stop in (5, 9, 12):
        staged = diffusion_training.train(
            _net(num_classes=2), x, steps=stop, schedule_steps=12, checkpoint_path=path, **kw
        )
        assert staged.steps == stop and len(staged.loss_history) == stop
    assert staged.loss_history == pytest.approx(full.loss_history, rel=1e-6)
    for a, b in zip(full.ema.state_dict().values(), staged.ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="was trained with"):  # another schedule length
        diffusion_training.train(
            _net(num_classes=2), x, steps=12, schedule_steps=24, checkpoint_path=path, **kw
        )
    with pytest.raises(ValueError, match="schedule_steps must be"):
        diffusion_training.train(_net(num_classes=2), x, steps=12, schedule_steps=6, **kw)


def test_finished_checkpoint_is_reused_without_training(tmp_path):
    x, _ = _data(8)
    s = Schedule.make("linear", T=20)
    path = tmp_path / "m.safetensors"
    first = diffusion_training.train(
        _net(), x, schedule=s, steps=3, batch_size=4, checkpoint_path=path, progress=False
    )
    again = diffusion_training.train(
        _net(),
        x,
        schedule=s,
        steps=3,
        batch_size=4,
        checkpoint_path=path,
        resume=True,
        progress=False,
    )
    assert again.resumed_from == 3 and again.loss_history == first.loss_history
    torch.testing.assert_close(again.ema.conv_in.weight, first.ema.conv_in.weight)
    # the training time is kept in the checkpoint: a cached model still says how long it took
    assert first.seconds > 0 and again.seconds == pytest.approx(first.seconds, rel=1e-3)
    # a checkpoint trained with other settings is refused rather than silently mixed in
    with pytest.raises(ValueError, match="was trained with"):
        diffusion_training.train(
            _net(), x, schedule=s, steps=3, batch_size=4, lr=1e-4, checkpoint_path=path,
            resume=True, progress=False,
        )  # fmt: skip


def test_vector_condition_is_dropped_to_zeros():
    x, _ = _data(8)
    cond = torch.randn(8, 3)
    r = diffusion_training.train(
        _net(cond_dim=3),
        x,
        cond=cond,
        schedule=Schedule.make("linear", T=20),
        steps=2,
        batch_size=4,
        progress=False,
    )
    assert len(r.loss_history) == 2


def test_bad_input_is_refused(tmp_path):
    x, y = _data(8)
    s = Schedule.make("linear", T=20)
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        diffusion_training.train(_net(), x * 3, schedule=s, steps=1, progress=False)
    with pytest.raises(ValueError, match="labels has 4 rows for 8 images"):
        diffusion_training.train(
            _net(num_classes=2), x, labels=y[:4], schedule=s, steps=1, progress=False
        )
    with pytest.raises(TypeError, match="int64"):
        diffusion_training.train(
            _net(num_classes=2), x, labels=y.float(), schedule=s, steps=1, progress=False
        )
    with pytest.raises(ValueError, match="steps must be a positive int"):
        diffusion_training.train(_net(), x, schedule=s, steps=0, progress=False)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        diffusion_training.train(_net(), x, schedule=s, steps=1, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        diffusion_training.train(_net(), x[0], schedule=s, steps=1, progress=False)


def test_classifier_learns_two_easy_classes():
    x, y = _data(64)
    net = classifier.train_classifier(x, y, epochs=3, batch_size=16, seed=0)
    assert classifier.accuracy(net, x, y) >= 0.95
    assert classifier.predict(net, x).shape == (64,)
