"""Packs the course files into the wheel, so that an installed kit runs anywhere.

Everything else is declared in ``pyproject.toml``. A wheel (``pip install <repository URL>`` or
``pip install imgen_course-*.whl``) carries, beside the ``helpers`` package, a copy of the
notebooks, the course pages and solutions, and the data registry under
``helpers/course_material/``: ``python -m helpers run`` executes those notebooks and
``python -m helpers notebooks DEST`` copies them out. An editable install (``pip install -e .``)
reads them from the checkout instead and packs nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
MATERIAL = ("notebooks", "course", "data/README.md", "data/registry.json", "environment.yml")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "_build")


class BuildWithMaterial(build_py):
    """``build_py`` that also copies :data:`MATERIAL` into ``helpers/course_material``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "helpers" / "course_material"
        if target.exists():
            shutil.rmtree(target)
        for name in MATERIAL:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=SKIP)
            elif source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
            else:
                raise FileNotFoundError(f"{source} is missing: the wheel needs it")


setup(cmdclass={"build_py": BuildWithMaterial})
