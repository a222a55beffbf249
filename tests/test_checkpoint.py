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


# --------------------------------------------------------------------------------------------
# damaged and foreign files, tied weights, permissions


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"", "is empty"),
        (lambda b: b[: len(b) // 2], "damaged or not a checkpoint"),
        (lambda b: b"\xff" * 64, "damaged or not a checkpoint"),
        (lambda b: b"garbage text, not a checkpoint at all" * 3, "damaged or not a checkpoint"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, damage, message):
    path = checkpoint.save_training_state(tmp_path / "c.safetensors", model=_model(), step=1)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(checkpoint.CheckpointError, match=message) as err:
        checkpoint.read(path)
    assert str(path) in str(err.value) and err.value.moved_to is None and path.exists()


def _flip(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_the_weights_is_detected(tmp_path):
    path = checkpoint.save_training_state(tmp_path / "c.safetensors", model=_model(), step=1)
    _flip(path, len(path.read_bytes()) - 5)  # inside the last tensor's bytes
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load_training_state(path, model=_model())


def test_a_flipped_bit_in_the_rng_state_is_detected(tmp_path):
    gen = torch.Generator().manual_seed(3)
    path = checkpoint.save_training_state(
        tmp_path / "c.safetensors", model=_model(), step=1, generators={"data": gen}
    )
    data = path.read_bytes()
    at = data.find(gen.get_state().numpy().tobytes()[:64])
    assert at > 0
    _flip(path, at + 200)
    fresh = torch.Generator().manual_seed(99)
    before = fresh.get_state()
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load_training_state(path, model=_model(), generators={"data": fresh})
    assert torch.equal(fresh.get_state(), before)  # nothing was restored from a bad file


def test_a_checkpoint_of_another_network_changes_nothing(tmp_path):
    path = checkpoint.save_training_state(tmp_path / "c.safetensors", model=_model(), step=1)
    other = torch.nn.Sequential(
        torch.nn.Linear(4, 9), torch.nn.BatchNorm1d(9), torch.nn.Linear(9, 2)
    )
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(checkpoint.CheckpointError, match=r"another network.*\(9, 4\)"):
        checkpoint.load_training_state(path, model=other)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_a_damaged_cache_file_is_moved_aside(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    path = checkpoint.save_training_state(
        tmp_path / "cache" / "c.safetensors", model=_model(), step=1
    )
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(
        checkpoint.CheckpointError, match="moved it to c.safetensors.damaged-"
    ) as err:
        checkpoint.read(path)
    assert err.value.moved_to is not None and err.value.moved_to.exists() and not path.exists()
    assert checkpoint.in_cache(path) and not checkpoint.in_cache(tmp_path / "elsewhere")


class _Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(5, 4)
        self.out = torch.nn.Linear(4, 5, bias=False)
        self.out.weight = self.embed.weight


def test_tied_weights_save_and_reload_equal_and_tied(tmp_path):
    torch.manual_seed(0)
    a, b = _Tied(), _Tied()
    path = checkpoint.save_training_state(tmp_path / "t.safetensors", model=a, step=1)
    checkpoint.load_training_state(path, model=b)
    assert torch.equal(a.embed.weight, b.embed.weight)
    assert b.out.weight is b.embed.weight  # still one parameter


def test_non_finite_weights_are_never_saved_or_loaded(tmp_path):
    net = _model()
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"'model/0.weight' holds 1 non-finite"):
        checkpoint.save_training_state(tmp_path / "n.safetensors", model=net, step=1)
    assert not (tmp_path / "n.safetensors").exists()
    # a NaN file written by other means (an older kit) is refused on load
    tensors = {f"model/{k}": v for k, v in net.state_dict().items()}
    checkpoint.atomic_save(tensors, tmp_path / "n.safetensors", meta={"step": 1})
    with pytest.raises(checkpoint.CheckpointError, match="non-finite"):
        checkpoint.load_training_state(tmp_path / "n.safetensors", model=_model())


def test_files_get_the_users_umask_and_orphans_are_cleaned(tmp_path):
    orphan = tmp_path / "m.safetensors.12345678.tmp"  # a killed save of an older kit
    orphan.write_bytes(b"half")
    os.utime(orphan, (0, 0))
    old = os.umask(0o022)
    try:
        path = checkpoint.atomic_save({"w": torch.ones(2)}, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # mkstemp would make 0o600
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_files_without_a_checksum_still_load(tmp_path):
    from safetensors.torch import save_file

    save_file({"model/weight": torch.ones(2, 3), "model/bias": torch.zeros(2)},
              str(tmp_path / "old.safetensors"), metadata={"meta": '{"step": 4}'})  # fmt: skip
    net = torch.nn.Linear(3, 2)
    assert checkpoint.load_training_state(tmp_path / "old.safetensors", model=net)["step"] == 4
    assert torch.equal(net.weight, torch.ones(2, 3))


def test_non_tensor_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match=r"'w' are list"):
        checkpoint.atomic_save({"w": [1, 2]}, tmp_path / "m.safetensors")
