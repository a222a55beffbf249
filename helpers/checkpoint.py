"""Checkpoints as safetensors, written atomically, with everything needed to resume training.

A checkpoint holds named groups of tensors (``model``, ``ema``, ``optimizer``, ``rng`` …) flattened
into one safetensors file (keys ``"<group>/<name>"``) plus JSON metadata (step, optimizer
hyper-parameters, config). Nothing is unpickled, so loading an untrusted file is safe.

Each file carries a SHA-256 checksum of its tensors and metadata, verified on every read: a
truncated, empty or garbage file, a flipped bit in the weights or in a saved random state, or a
checkpoint of another network raises :class:`CheckpointError` naming the file. A damaged file
inside the cache folder (:func:`helpers.runtime.cache_dir`) is moved aside first
(``<name>.damaged-<time>``, see :func:`helpers.files.move_aside`), so the trainers that find it
train again; a damaged file elsewhere (a user's own resume) is left where it is and stops the run.
Files written before checksums were stored are read without one.

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

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from . import files
from .runtime import cache_dir

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "atomic_save",
    "in_cache",
    "load_training_state",
    "read",
    "save_training_state",
]


class CheckpointError(ValueError):
    """A checkpoint file that is damaged, not a checkpoint, or made for another network.

    Attributes
    ----------
    path : Path
        The file.
    moved_to : Path or None
        Where a damaged cache file was moved (``None`` when it was left in place).
    """

    def __init__(self, message: str, path: Path, moved_to: Path | None = None) -> None:
        super().__init__(message)
        self.path, self.moved_to = path, moved_to


def in_cache(path: str | Path) -> bool:
    """Whether ``path`` lies inside the cache folder (files the kit can always make again)."""
    try:
        Path(path).resolve().relative_to(cache_dir().resolve())
    except ValueError:
        return False
    return True


def _damaged(path: Path, what: str) -> CheckpointError:
    """The error for a bad file; a cache file is moved aside first (and the message says so)."""
    if in_cache(path) and path.exists():
        aside = files.move_aside(path)
        message = (
            f"cached checkpoint {path} {what}; moved it to {aside.name}, it will be made again"
        )
        logger.info(message)  # the caller that makes it again says so (a warning)
        return CheckpointError(message, path, aside)
    return CheckpointError(
        f"checkpoint {path} {what}; delete or replace the file (or start afresh, e.g. resume=False)",
        path,
    )


def _digest(tensors: dict[str, torch.Tensor], meta_text: str) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (sorted by name) and the meta."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(meta_text.encode())
    return h.hexdigest()


def atomic_save(
    tensors: dict[str, torch.Tensor], path: str | Path, *, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``tensors`` to ``path`` through a temporary file in the same folder, then rename.

    A crash mid-write leaves the previous checkpoint intact (temporary files of killed writes are
    removed by the next save). ``meta`` is stored as JSON, with a checksum of everything. Tensors
    that share memory (tied weights) are stored once each, as copies. The file gets the
    permissions of any new file (``0o666`` minus the umask).

    Raises
    ------
    TypeError
        A value that is not a tensor, or ``meta`` that JSON cannot store.
    """
    path = Path(path)
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(
            f"checkpoint values must be tensors; {', '.join(map(repr, bad[:5]))} "
            f"are {', '.join(type(tensors[k]).__name__ for k in bad[:5])}"
        )
    clean = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    try:
        meta_text = json.dumps(meta or {})
    except TypeError as err:
        raise TypeError(f"checkpoint meta must be JSON-serialisable: {err}") from err
    stored = {"meta": meta_text, "sha256": _digest(clean, meta_text)}
    with files.atomic_write(path) as tmp:
        save_file(clean, str(tmp), metadata=stored)
    return path


def read(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`atomic_save`: ``(tensors, meta)``, checksum verified.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        The file is empty, truncated, not a safetensors file, or its checksum does not match (a
        cache file is moved aside first, see the module's description).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
        meta_text = stored.get("meta", "{}")
        meta = json.loads(meta_text)
    except Exception as err:  # safetensors, JSON and OS errors: all mean "not readable"
        size = path.stat().st_size if path.exists() else 0
        what = "is empty" if size == 0 else f"is damaged or not a checkpoint ({size} bytes: {err})"
        raise _damaged(path, what) from err
    if "sha256" in stored and stored["sha256"] != _digest(tensors, meta_text):
        raise _damaged(path, "does not match its checksum (the file was altered or damaged)")
    if str(device) != "cpu":
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors, meta


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


def _check_finite_weights(tensors: dict[str, torch.Tensor], what: str) -> str | None:
    """The first floating tensor of ``tensors`` holding NaN or Inf, as a message (else ``None``)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            return f"{what} {name!r} holds {bad} non-finite value(s)"
    return None


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

    Raises
    ------
    FloatingPointError
        The model's (or the EMA model's) weights hold NaN or Inf: such a state is never saved,
        so it can never be resumed or reused as a finished model.
    """
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    info: dict[str, Any] = {"step": int(step), **(meta or {})}
    if ema is not None:
        tensors.update({f"ema/{k}": v for k, v in ema.state_dict().items()})
    problem = _check_finite_weights(tensors, "weight")
    if problem is not None:
        raise FloatingPointError(f"not saving {path}: {problem}")
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


def _check_fits(
    path: Path,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    targets: dict[str, torch.nn.Module],
    optimizers: dict[str, tuple[torch.optim.Optimizer, list[dict]]],
    generators: dict[str, torch.Generator],
) -> str | None:
    """What does not fit the objects to restore (as a message), or ``None``; nothing is changed."""
    for prefix, module in targets.items():
        saved = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
        wanted = module.state_dict()
        missing, unexpected = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
        if missing or unexpected:
            return (
                f"holds {prefix} weights for another network (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]})"
            )
        for k, v in wanted.items():
            if tuple(saved[k].shape) != tuple(v.shape):
                return (
                    f"holds {prefix} weights for another network: {k!r} has shape "
                    f"{tuple(saved[k].shape)}, the model's has {tuple(v.shape)}"
                )
        problem = _check_finite_weights(saved, f"{prefix} weight")
        if problem is not None:
            return problem
    for name, (opt, groups) in optimizers.items():
        ours = opt.state_dict()["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in ours]:
            return f"holds optimizer {name!r} state for another set of parameters"
    for name, gen in generators.items():
        state = tensors.get(f"rng/{name}")
        if state is not None:
            ref = gen.get_state()
            if state.dtype != ref.dtype or state.shape != ref.shape:
                return f"holds a random state {name!r} of another kind of generator"
    return None


def load_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    generators: dict[str, torch.Generator] | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    expect: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Restore what :func:`save_training_state` wrote into the given objects.

    The file is verified (checksum, and that its tensors fit the given objects: names, shapes,
    finite weights, optimizer layout, random-state kind) before any object is changed, so on a
    :class:`CheckpointError` the objects are as they were.

    Parameters
    ----------
    path, model, optimizer, ema, generators, optimizers
        As saved by :func:`save_training_state`.
    expect : dict, optional
        Metadata the file must hold (e.g. the seed and batch size of the run to resume), compared
        after a JSON round trip (tuples read back as lists).

    Returns
    -------
    dict
        The metadata (with ``"step"``) plus ``"extra"``: the extra tensors.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    CheckpointError
        Damaged, not a checkpoint, made for another network or run (``expect``), or holding
        non-finite weights. A file in the cache is moved aside first.
    """
    path = Path(path)
    tensors, meta = read(path)
    groups = meta.get("optimizers_param_groups", {})
    for name in optimizers or {}:
        if name not in groups:
            raise KeyError(
                f"checkpoint {path} holds no optimizer named {name!r}; it has {sorted(groups)}"
            )
    opts = {name: (opt, groups[name]) for name, opt in (optimizers or {}).items()}
    if optimizer is not None:
        opts["optimizer"] = (optimizer, meta.get("optimizer_param_groups", []))
    targets = {"model": model, **({"ema": ema} if ema is not None else {})}
    problem = _check_fits(path, tensors, meta, targets, opts, generators or {})
    if problem is None and expect:
        wanted = json.loads(json.dumps(expect))
        saved = {k: meta.get(k) for k in wanted}
        if saved != wanted:
            diff = [k for k in wanted if saved[k] != wanted[k]]
            problem = (
                "was trained with "
                + ", ".join(f"{k} {saved[k]!r}" for k in diff)
                + ", not "
                + ", ".join(f"{k} {wanted[k]!r}" for k in diff)
            )
    if problem is not None:
        raise _damaged(path, problem)
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
        _optimizer_from_tensors(opt, group(f"optimizers/{name}"), groups[name])
    for name, gen in (generators or {}).items():
        if f"rng/{name}" in tensors:
            gen.set_state(tensors[f"rng/{name}"])
    meta["extra"] = group("extra")
    return meta
