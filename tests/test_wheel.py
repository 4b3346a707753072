"""The wheel runs without the source tree: built from a copy of the project, installed into a scratch
folder, and used from an empty working directory (no checkout, no configs/ beside it), with only the
dependencies of this environment on the path (``python -S``: no .pth, so no editable install of the
checkout either)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD_RECIPE = """
import echoink, echoink_lab
from echoink_lab.recipe import RECIPES, load_lab_recipe, recipe
cfg, d = load_lab_recipe(recipe("demo.yaml"), ["train.max_steps=3"])
print(echoink.__file__, echoink_lab.__file__, d.families, d.train_items, cfg.train.max_steps, cfg.data.template)
from importlib.resources import files
shipped = files("echoink_lab").joinpath("recipes").iterdir()
print(sorted(RECIPES) == sorted(p.name for p in shipped if p.name.endswith(".yaml")))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args[:4]}...: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_wheel_runs_echoink_demo_help_and_loads_the_demo_recipe_from_package_data(tmp_path: Path):
    tree, wheels, target, empty = (tmp_path / n for n in ("tree", "wheels", "site", "empty"))
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(ROOT / "src", tree / "src", ignore=ignore)  # the build writes build/ beside it
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    empty.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(tree), "-w", str(wheels)], tmp_path)
    (wheel,) = wheels.glob("echoink-*.whl")
    _run([*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)], tmp_path)
    assert (target / "echoink_lab" / "recipes" / "demo.yaml").is_file()
    assert not (target / "configs").exists()

    deps = sysconfig.get_paths()["purelib"]  # this environment's site-packages: the dependencies
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), deps])}
    env.pop("PYTHONHOME", None)
    python = [sys.executable, "-S"]  # no site: no .pth, so the checkout's editable install stays out
    help_text = _run([*python, "-c", "from echoink.cli import run; run()", "demo", "--help"], empty, env)
    assert "--modality" in help_text and "--config" in help_text
    first, second = _run([*python, "-c", LOAD_RECIPE], empty, env).splitlines()
    installed = str(target) + os.sep
    echoink_file, lab_file, *values = first.split(" ", 2)
    assert echoink_file.startswith(installed) and lab_file.startswith(installed)
    assert values == ["['tone_where'] 2000 3 reasoning_short"]
    assert second == "True"
