"""The package's layout: modules by concept, no import cycles, one implementation of each formula."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import nbformat
import pytest

import helpers
from helpers import runtime

ROOT = runtime.project_root()
PACKAGE = ROOT / "helpers"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package modules ``name`` imports, anywhere in its source (function bodies too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        found |= {c for c in candidates if c in MODULES and c != name}
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search (enough to report one)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_imports_and_is_listed_by_pkgutil():
    listed = {m.name for m in pkgutil.walk_packages(helpers.__path__, "helpers.")}
    assert listed | {"helpers"} == set(MODULES)
    for name in sorted(MODULES):
        importlib.import_module(name)


def test_import_graph_has_no_cycle():
    # edges into a package's __init__ are the package's public face, not a dependency on a sibling
    edges = {
        name: {t for t in _imports(name, path) if MODULES[t].name != "__init__.py"}
        for name, path in MODULES.items()
    }
    assert _cycles(edges) == []


def test_a_cycle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_no_module_getattr_and_no_private_names_across_modules():
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "__getattr__" not in top, f"{name} defines a module __getattr__"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("helpers")
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{name} imports private names {private} from {node.module}"


def test_module_names_never_shadow_the_standard_library():
    for name in MODULES:
        leaf = name.rsplit(".", 1)[-1]
        assert leaf not in sys.stdlib_module_names, f"{name} shadows the standard library's {leaf}"


def test_no_hidden_machinery():
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        assert "/proc/" not in text, f"{name} reads /proc to guess its environment"
        assert not re.search(r"signature\([^)]*\)[^\n]*\)\[", text), f"{name} slices a signature"
        assert not re.search(r"parameters\.values\(\)\)\[", text), f"{name} slices a signature"


def _definitions() -> dict[str, list[str]]:
    """Top-level function and class names → the modules that define them."""
    out: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                out.setdefault(node.name, []).append(name)
    return out


ONE_DEFINITION = {
    "psnr": "helpers.metrics",
    "mse_to_psnr": "helpers.metrics",
    "classifier_free_guidance": "helpers.diffusion",
    "guided_eps": "helpers.diffusion",
    "null_condition": "helpers.diffusion",
    "drop_condition": "helpers.diffusion",
    "ema_update": "helpers.optim",
    "ema_decay_at": "helpers.optim",
    "lr_at": "helpers.optim",
    "sinusoidal_embedding": "helpers.sinusoidal",
    "fit": None,  # dip.fit (one image) and classifier.fit (a labelled set) are two ideas
    "train_classifier": "helpers.classifier",
    "predict": "helpers.classifier",
    "accuracy": "helpers.classifier",
    "random_shift": "helpers.classifier",
    "seeded": "helpers.runtime",
    "UNet": "helpers.unet",
    "CrossAttention": "helpers.unet",
}


@pytest.mark.parametrize("function", sorted(k for k, v in ONE_DEFINITION.items() if v))
def test_each_shared_formula_is_defined_once(function):
    assert _definitions()[function] == [ONE_DEFINITION[function]]


FORMULA_TEXT = {
    # the guidance combination, the EMA update and the sine–cosine code, each written once
    r"\(1 \+ (w|guidance)\) \* eps_c - (w|guidance) \* eps_u": "helpers.diffusion",
    r"\.lerp_\(": "helpers.optim",
    r"\.sin\(\), [a-z_]+\.cos\(\)|torch\.cos\([a-z_]+\), torch\.sin": "helpers.sinusoidal",
    r"10\.0 \* (math|torch|np)\.log10": "helpers.metrics",
}


@pytest.mark.parametrize("pattern", sorted(FORMULA_TEXT))
def test_formula_text_appears_in_one_module(pattern):
    where = [n for n, p in MODULES.items() if re.search(pattern, p.read_text(encoding="utf-8"))]
    assert where == [FORMULA_TEXT[pattern]]


@pytest.mark.parametrize("stem", ["03_ddpm_ddim", "04_ssl_conditioned_diffusion"])
def test_notebooks_that_write_guidance_out_check_it_against_the_library(stem):
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any("(1 + w) * eps_c - w * eps_u" in s for s in code), "the formula is written out"
    assert any(
        re.search(r"assert torch\.(equal|allclose)\(.*diffusion\.guided_eps", s) for s in code
    )


def test_notebook_04_writes_the_large_image_sampler_out_and_checks_it():
    nb = nbformat.read(ROOT / "notebooks" / "04_ssl_conditioned_diffusion.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for piece in (
        "window_positions",
        "overlap_weights",
        "grid_conditions",
        "ddim_step",
        "guided_eps",
    ):
        assert f"large_image.{piece}" in code or f"diffusion.{piece}" in code, piece
    assert re.search(r"assert torch\.allclose\(sample_large_by_hand\(.*lib", code)


def test_readme_module_table_matches_the_tree():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- modules: begin -->", 1)[1].split("<!-- modules: end -->", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))
    top = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert listed == top - {"__main__"}
