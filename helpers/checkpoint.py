"""Checkpoints as safetensors, written atomically, with everything needed to resume training.

A checkpoint holds named groups of tensors (``model``, ``ema``, ``optimizer``, ``rng`` …) flattened
into one safetensors file (keys ``"<group>/<name>"``) plus JSON metadata (step, optimizer
hyper-parameters, config). Nothing is unpickled, so loading an untrusted file is safe.

Examples
--------
>>> import torch, tempfile, pathlib
>>> from helpers import checkpoint
>>> model = torch.nn.Linear(2, 2)
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
>>> _ = checkpoint.save_training_state(path, model=model, step=3)
>>> checkpoint.load_training_state(path, model=model)["step"]
3
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file


def atomic_save(
    tensors: dict[str, torch.Tensor], path: str | Path, *, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``tensors`` to ``path`` through a temporary file in the same folder, then rename.

    A crash mid-write leaves the previous checkpoint intact. ``meta`` is stored as JSON.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean, tmp, metadata={"meta": json.dumps(meta or {})})
        with open(tmp, "rb") as f:  # on disk before the rename, so the rename never exposes a
            os.fsync(f.fileno())  # half-written file after a power loss
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`atomic_save`: ``(tensors, meta)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    return load_file(str(path), device=str(device)), meta


def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            tensors[f"{idx}.{key}"] = (
                value if isinstance(value, torch.Tensor) else torch.tensor(value)
            )
    return tensors, sd["param_groups"]


def _optimizer_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    generators: dict[str, torch.Generator] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    meta: dict[str, Any] | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> Path:
    """Save model (and optimizer, EMA model, random generators, extra tensors) atomically.

    Parameters
    ----------
    path : str or Path
        Target ``.safetensors`` file.
    model : nn.Module
        The trained network.
    step : int
        Number of completed optimisation steps.
    optimizer, ema, generators, extra : optional
        Saved when given, so that :func:`load_training_state` can resume exactly.
    meta : dict, optional
        JSON-serialisable facts (config, loss so far …).
    optimizers : dict of str to Optimizer, optional
        Further named optimizers (e.g. a GAN's generator and discriminator optimizers).

    Returns
    -------
    Path
    """
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    info: dict[str, Any] = {"step": int(step), **(meta or {})}
    if ema is not None:
        tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
    if optimizer is not None:
        opt_tensors, groups = _optimizer_to_tensors(optimizer)
        tensors.update({f"optimizer/{k}": v for k, v in opt_tensors.items()})
        info["optimizer_param_groups"] = groups
    for name, opt in (optimizers or {}).items():
        opt_tensors, groups = _optimizer_to_tensors(opt)
        tensors.update({f"optimizers/{name}/{k}": v for k, v in opt_tensors.items()})
        info.setdefault("optimizers_param_groups", {})[name] = groups
    for name, gen in (generators or {}).items():
        tensors[f"rng/{name}"] = gen.get_state()
    for name, value in (extra or {}).items():
        tensors[f"extra/{name}"] = value
    return atomic_save(tensors, path, meta=info)


def load_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    generators: dict[str, torch.Generator] | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into the given objects.

    Returns
    -------
    dict
        The metadata (with ``"step"``) plus ``"extra"``: the extra tensors.
    """
    tensors, meta = read(path)
    device = next(iter(model.parameters()), torch.empty(0)).device

    def group(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}

    model.load_state_dict({k: v.to(device) for k, v in group("model").items()})
    if ema is not None:
        ema.load_state_dict({k: v.to(device) for k, v in group("ema").items()})
    if optimizer is not None:
        _optimizer_from_tensors(
            optimizer, group("optimizer"), meta.get("optimizer_param_groups", [])
        )
    for name, opt in (optimizers or {}).items():
        groups = meta.get("optimizers_param_groups", {})
        if name not in groups:
            raise KeyError(
                f"checkpoint {path} holds no optimizer named {name!r}; it has {sorted(groups)}"
            )
        _optimizer_from_tensors(opt, group(f"optimizers/{name}"), groups[name])
    for name, gen in (generators or {}).items():
        if f"rng/{name}" in tensors:
            gen.set_state(tensors[f"rng/{name}"])
    meta["extra"] = group("extra")
    return meta
