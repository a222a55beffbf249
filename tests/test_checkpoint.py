import os

import pytest
import torch

from helpers import checkpoint


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )


def _steps(model, opt, gen, n):
    for _ in range(n):
        x = torch.randn(16, 4, generator=gen)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_atomic_save_roundtrip_and_meta(tmp_path):
    path = checkpoint.atomic_save(
        {"w": torch.arange(6.0).view(2, 3)}, tmp_path / "sub" / "a.safetensors", meta={"k": [1, 2]}
    )
    tensors, meta = checkpoint.read(path)
    assert torch.equal(tensors["w"], torch.arange(6.0).view(2, 3)) and meta == {"k": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["a.safetensors"]  # no temporary file left


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = checkpoint.atomic_save({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    import helpers.checkpoint as ck

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.atomic_save({"w": torch.zeros(2)}, path)
    assert torch.equal(checkpoint.read(path)[0]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["a.safetensors"]


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoint.read(tmp_path / "none.safetensors")


def test_resume_is_exact(tmp_path):
    """Train 6 steps straight, or 3 + save + load into fresh objects + 3: identical weights."""
    model, gen = _model(), torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _steps(model, opt, gen, 6)

    first, gen1 = _model(), torch.Generator().manual_seed(1)
    opt1 = torch.optim.Adam(first.parameters(), lr=1e-2)
    _steps(first, opt1, gen1, 3)
    ema = _model(5)
    path = checkpoint.save_training_state(
        tmp_path / "c.safetensors",
        model=first,
        optimizer=opt1,
        ema=ema,
        step=3,
        generators={"data": gen1},
        extra={"loss": torch.tensor([1.0, 0.5])},
        meta={"note": "x"},
    )

    second, gen2, ema2 = _model(9), torch.Generator().manual_seed(123), _model(7)
    opt2 = torch.optim.Adam(second.parameters(), lr=1e-2)
    meta = checkpoint.load_training_state(
        path, model=second, optimizer=opt2, ema=ema2, generators={"data": gen2}
    )
    assert (
        meta["step"] == 3
        and meta["note"] == "x"
        and torch.equal(meta["extra"]["loss"], torch.tensor([1.0, 0.5]))
    )
    for a, b in zip(ema.state_dict().values(), ema2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _steps(second, opt2, gen2, 3)
    for a, b in zip(model.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
