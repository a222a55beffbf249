"""``python -m helpers doctor``: check the environment and say how to fix what is missing."""

from __future__ import annotations

from dataclasses import dataclass

from .. import runtime


@dataclass
class Check:
    """One line of :func:`doctor`'s findings."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def doctor() -> list[Check]:
    """Check Python, packages, device, kernel, built-in data and writable folders."""
    import sys

    checks = [
        Check(
            "python",
            sys.version_info >= (3, 11),
            sys.version.split()[0],
            "install Python 3.11 or newer",
        )
    ]
    for pkg in (
        "torch",
        "torchvision",
        "diffusers",
        "timm",
        "scikit-image",
        "scikit-learn",
        "nilearn",
        "papermill",
        "nbval",
        "ipywidgets",
        "safetensors",
    ):
        v = runtime.version(pkg)
        checks.append(
            Check(pkg, v != "missing", v, "run `make setup` (or `pip install -e .[dev]`)")
        )
    device = runtime.detect_device()
    checks.append(
        Check("device", True, f"{device} (profile auto → {runtime.resolve_profile('auto')})")
    )
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        checks.append(
            Check(
                "kernel python3",
                "python3" in specs,
                ", ".join(sorted(specs)) or "none",
                "pip install ipykernel",
            )
        )
    except Exception as err:  # pragma: no cover - depends on the environment
        checks.append(
            Check("kernel python3", False, str(err), "pip install ipykernel jupyter_client")
        )
    from .. import datasets

    for name in datasets.available(external_too=False):
        try:
            ds = datasets.load(
                name, n=1 if name not in ("retina", "camera", "astronaut") else None, size=16
            )
            checks.append(Check(f"data {name}", True, f"{tuple(ds.images.shape)}"))
        except Exception as err:
            checks.append(
                Check(
                    f"data {name}",
                    False,
                    f"{type(err).__name__}: {err}",
                    "reinstall scikit-image / scikit-learn / nilearn",
                )
            )
    root = runtime.checkout_root()
    checks.append(
        Check(
            "course files",
            (runtime.project_root() / "notebooks").is_dir(),
            f"{runtime.project_root()} ({'checkout' if root else 'installed kit'})",
            "reinstall the kit (`pip install imgen-course`): its notebooks are missing",
        )
    )
    for folder in (runtime.build_dir(), runtime.cache_dir()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".write-test"
            probe.write_text("ok")
            probe.unlink()
            checks.append(Check(f"writable {folder.name}/", True, str(folder)))
        except OSError as err:
            checks.append(
                Check(f"writable {folder.name}/", False, str(err), f"make {folder} writable")
            )
    return checks
