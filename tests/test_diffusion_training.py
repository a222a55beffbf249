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


# --------------------------------------------------------------------------------------------
# non-finite values, integer and half-precision images, every option checked, damaged state


def _train(x, **kw):
    args = dict(schedule=Schedule.make("linear", T=20), steps=2, batch_size=4, progress=False)
    return diffusion_training.train(kw.pop("net", _net()), x, **{**args, **kw})


def test_nan_images_and_conditions_are_refused_before_training():
    x, _ = _data(8)
    x[3, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match=r"images holds 1 non-finite value\(s\).*\(3, 0, 2, 2\)"):
        _train(x)
    x, _ = _data(8)
    cond = torch.rand(8, 3)
    cond[5, 1] = float("inf")
    with pytest.raises(ValueError, match=r"cond holds 1 non-finite"):
        _train(x, net=_net(cond_dim=3), cond=cond)


def test_a_loss_that_becomes_non_finite_names_the_step_and_saves_nothing(tmp_path):
    x, _ = _data(8)
    net = _net()
    calls = {"n": 0}

    def broken(module, inputs, output):  # the network diverges at its third call
        calls["n"] += 1
        return output * float("nan") if calls["n"] == 3 else output

    net.conv_out.register_forward_hook(broken)
    path = tmp_path / "c.safetensors"
    with pytest.raises(FloatingPointError, match=r"became nan at step 3 of 5"):
        _train(x, net=net, steps=5, checkpoint_path=path, checkpoint_every=1)
    meta = checkpoint.read(path)[1]
    assert meta["step"] == 2  # the last good state; the NaN step was never saved


def test_zero_images_integer_images_and_half_images():
    with pytest.raises(ValueError, match=r"images is empty"):
        _train(torch.zeros(0, 1, 8, 8))
    with pytest.raises(TypeError, match=r"to_signed\(images.float\(\) / 255\)"):
        _train(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    x, _ = _data(8)
    result = _train(x.half())  # float16 images train the float32 network
    assert len(result.loss_history) == 2 and all(
        map(torch.isfinite, map(torch.tensor, result.loss_history))
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"grad_clip": -1.0}, "grad_clip must be > 0"),
        ({"grad_clip": 0.0}, "grad_clip must be > 0"),
        ({"ema_decay": 1.5}, r"ema_decay must be in \[0, 1\)"),
        ({"warmup": -5}, "warmup must be an int ≥ 0"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"steps": 0}, "steps must be a positive int"),
        ({"seed": "a"}, "seed must be an int"),
        ({"device": "nope"}, "'nope' is not a device"),
        ({"lr_schedule": "step"}, "lr_schedule must be one of"),
    ],
)
def test_every_option_is_checked_where_it_enters(option, message):
    x, _ = _data(8)
    with pytest.raises((ValueError, TypeError), match=message):
        _train(x, **option)


def test_labels_out_of_range_are_refused_even_if_no_batch_would_draw_them():
    x, _ = _data(8)
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 5])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\).*to 5"):
        _train(x, net=_net(num_classes=2), labels=labels)


def test_a_damaged_cache_is_moved_aside_and_trained_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    from helpers import runtime

    path = runtime.cache_path("99_test", 1)
    x, _ = _data(8)
    first = _train(x, checkpoint_path=path)
    path.write_bytes(path.read_bytes()[:-7])  # truncated, e.g. by a full disk
    with caplog.at_level("WARNING"):
        again = _train(x, checkpoint_path=path)
    assert again.resumed_from == 0 and again.loss_history == first.loss_history
    assert "moved it to" in caplog.text and "training from scratch" in caplog.text
    assert len(list(tmp_path.glob("99_test_*.damaged-*"))) == 1 and path.exists()


def test_a_damaged_resume_file_of_the_user_stops_with_its_name(tmp_path):
    path = tmp_path / "mine.safetensors"
    x, _ = _data(8)
    _train(x, checkpoint_path=path)
    path.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match=f"{path} is empty"):
        _train(x, checkpoint_path=path, steps=4)
    assert path.exists()  # the user's file is left where it is


def test_bfloat16_network_trains():
    x, _ = _data(8)
    result = _train(x, net=_net().to(torch.bfloat16))
    assert len(result.loss_history) == 2
    assert all(v == v and abs(v) < 1e3 for v in result.loss_history)
