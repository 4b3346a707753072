"""The package keeps its shape: layers imported one way, no import cycles, only ``model/`` knows a
model family, the library never reaches into the lab, and no function runs over 60 lines.

No module under rl/ or eval/, nor sft.py, names a transformers model class, a tower, get_rope_index,
rope_deltas, the language model, a private transformers method or a media tensor key; eval/ and sft.py
import nothing from rl/. Every module of ``echoink`` has a layer (``LAYERS``); it imports only from its
own layer or lower ones, rl/ and eval/ not from each other, and no chain of imports comes back to
where it started. Imports are read with ``ast`` wherever they are (module level, inside functions,
under ``if TYPE_CHECKING:``: a type-only import is still a dependency one way).

Three parts: ``echoink`` (the library), ``echoink.testing`` (tiny models) and ``echoink_lab`` (the
benchmark, demos, experiments). No module of ``echoink`` but the CLI's app layer (``cli_app.lab``)
imports ``echoink_lab`` or ``echoink.testing``; outside ``model/`` (and ``echoink.testing``, which builds
tiny models of each family) no module, the lab's included, names a family's model type, class or geometry.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "echoink"
LAB = SRC.parent / "echoink_lab"
GUARDED = sorted([*(SRC / "rl").glob("*.py"), *(SRC / "eval").glob("*.py"), SRC / "sft.py"])
FORBIDDEN = {
    "model class": r"\bQwen\w*(ForConditionalGeneration|Model|Thinker\w*)\b|\bPreTrainedModel\b",
    "tower": r"\b(get_audio_features|get_image_features|get_video_features|audio_tower|visual)\b",
    "positions": r"\b(get_rope_index|rope_deltas|position_ids)\b",
    "language model": r"\b(language_model|lm_head|get_output_embeddings|get_input_embeddings)\b",
    "private transformers method": r"\._(get_logits_processor|prepare_\w+|update_model_kwargs\w*)\b",
    "serving engine": r"\b(import vllm|from vllm|SamplingParams|collective_rpc)\b",
    "media key": r"\b(input_features|feature_attention_mask|pixel_values\w*|image_grid_thw|video_grid_thw)\b",
}


def _code_without_docstrings(path: Path) -> str:
    """The module's source with docstrings blanked (prose may explain what the engine does)."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for i in range(body[0].lineno - 1, body[0].end_lineno):
                    lines[i] = ""
    return "\n".join(line.split("#", 1)[0] for line in lines)  # comments too


@pytest.mark.parametrize("path", GUARDED, ids=lambda p: str(p.relative_to(SRC)))
def test_no_model_internals_outside_model(path: Path):
    code = _code_without_docstrings(path)
    found = {what: sorted(set(m.group(0) for m in re.finditer(rx, code))) for what, rx in FORBIDDEN.items()}
    assert not {k: v for k, v in found.items() if v}, f"{path.name} names model internals"


LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ("registry", "jsonl", "guards", "runlog", "runlock", "outdir", "cli_errors", "filehash"), 0
    ),
    "__init__": 0,  # the ``echoink`` package itself
    "progress": 0,
    "bounded": 0,  # the bounded JSON/YAML reader (issue 39)
    "errors": 0,  # UserError: every layer raises it
    "data": 1,
    **dict.fromkeys(("config", "config_sections", "config_commands", "recipe_card", "sizing"), 2),
    "model": 3,
    "testing": 6,  # tiny models: a client of the library (only ``cli_app`` dispatches to it)
    "scoring": 4,
    **dict.fromkeys(("rl", "eval", "sft", "export"), 5),  # export: through the model's family
    **dict.fromkeys(
        ("preflight", "cli", "cli_app", "cli_data", "cli_eval", "cli_bench", "doctor", "__main__"), 6
    ),
    "preflight_model": 6,  # preflight's checks that read a model directory
}
"""The layer of each top-level module or package of ``echoink`` (a package's submodules share it), lowest
first. A new module must be placed here deliberately: an unplaced one fails the test."""
SIBLINGS = ("rl", "eval")
"""Same layer, but neither may import the other (what both need goes down to ``scoring``)."""


@functools.cache
def _module_names(src: Path) -> dict[str, Path]:
    """Every module under ``src`` (the ``echoink`` folder) by dotted name; a package by its own name."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, src: Path = SRC) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against its package).

    ``from P import x`` imports the module ``P.x`` when there is one (``from . import sharding``
    depends on that submodule, not on everything its package holds), else ``P``."""
    known = _module_names(src)
    tree = ast.parse(path.read_text())
    package = path.relative_to(src.parent).with_suffix("").parts[:-1]  # e.g. ("echoink", "eval")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out |= {f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def _graph(src: Path) -> dict[str, set[str]]:
    """module -> the modules of the package it imports (a name resolved to its longest module prefix)."""
    known = _module_names(src)
    root = src.name

    def module_of(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        return ".".join(parts) if parts else None

    graph = {}
    for name, path in known.items():
        inside = {m for m in _imports(path, src) if m == root or m.startswith(root + ".")}
        graph[name] = {t for t in map(module_of, inside) if t is not None and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each set of modules that import one another in a ring (a strongly connected
    component of more than one module, Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            ring = []
            while not ring or ring[-1] != v:
                ring.append(stack.pop())
            if len(ring) > 1:
                found.append(sorted(ring))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _layer(module: str) -> str | None:
    """The key of ``LAYERS`` a module falls under, or None when it has none."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return top if top in LAYERS else None


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Each import from a lower layer to a higher one, or between the siblings, as one line."""
    bad = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = _layer(importer), _layer(target)
            if a is None or b is None:
                continue  # test_every_module_has_a_layer reports it
            if LAYERS[a] < LAYERS[b]:
                bad.append(f"{importer} (layer {LAYERS[a]}) imports {target} (layer {LAYERS[b]})")
            elif a != b and {a, b} <= set(SIBLINGS):
                bad.append(f"{importer} imports {target} ({a} and {b} are siblings)")
    return bad


def _describe(cycles: list[list[str]], graph: dict[str, set[str]]) -> str:
    """Each cycle's modules, then the imports among them (the ones to cut)."""
    lines = []
    for ring in cycles:
        lines.append(f"cycle among {', '.join(ring)}:")
        lines += [f"    {a} -> {b}" for a in ring for b in sorted(graph[a] & set(ring))]
    return "\n".join(lines)


def test_every_module_has_a_layer():
    unplaced = [m for m in _module_names(SRC) if _layer(m) is None]
    assert not unplaced, f"modules with no layer (add them to LAYERS): {unplaced}"


def test_no_import_cycles():
    graph = _graph(SRC)
    cycles = _cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s):\n{_describe(cycles, graph)}"


def test_imports_go_down_the_layers():
    bad = _upward(_graph(SRC))
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "path", [*sorted((SRC / "eval").glob("*.py")), SRC / "sft.py"], ids=lambda p: str(p.relative_to(SRC))
)
def test_eval_and_sft_import_nothing_from_rl(path: Path):
    """The rewards and the scoring pass they share with training live in ``echoink.scoring``."""
    rl = {m for m in _imports(path) if m == "echoink.rl" or m.startswith("echoink.rl.")}
    assert not rl, f"{path.name} imports {sorted(rl)}"


def test_the_guard_sees_a_violation(tmp_path: Path):
    """The scan must be able to fail: a planted tower call and rl import are found."""
    planted = tmp_path / "echoink" / "eval" / "bad.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(
        '"""get_audio_features in prose is fine."""\nfrom ..rl.scoring import x\ny = m.get_rope_index\n'
    )
    code = _code_without_docstrings(planted)
    assert re.search(FORBIDDEN["positions"], code) and not re.search(FORBIDDEN["tower"], code)
    assert "echoink.rl.scoring" in _imports(planted, tmp_path / "echoink")


PLANTED = {
    "__init__.py": "",
    "jsonl.py": "def f():\n    from .model import engine\n",  # base -> model, inside a function
    "config.py": "from .config_sections import Section\n",
    "config_sections.py": "def g():\n    from . import config\n",  # config <-> config_sections
    "model/__init__.py": "from .engine import Engine\nfrom . import mm\n",  # a package and its parts
    "model/engine.py": "from .mm import MMInputs\nfrom ..data import load\n",
    "model/mm.py": "import echoink.jsonl\n",
    "data/__init__.py": "",
    "eval/__init__.py": "",
    "eval/bad.py": "from ..rl.trainer import train\n",  # a sibling
    "rl/__init__.py": "",
    "rl/trainer.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..eval import bad\n",
    "newthing.py": "",
}


def test_the_shape_checks_see_planted_violations(tmp_path: Path):
    """A cycle (through a function-level import), an upward import, imports between siblings and an
    unplaced module are found; a package importing its own submodules (and they each other) is not a cycle."""
    src = tmp_path / "echoink"
    for name, text in PLANTED.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    graph = _graph(src)
    assert graph["echoink.model"] == {"echoink.model.engine", "echoink.model.mm"}
    assert graph["echoink.model.mm"] == {"echoink.jsonl"}
    cycles = _cycles(graph)
    assert cycles == [
        ["echoink.config", "echoink.config_sections"],
        ["echoink.eval.bad", "echoink.rl.trainer"],
        ["echoink.jsonl", "echoink.model.engine", "echoink.model.mm"],
    ]
    assert "    echoink.config_sections -> echoink.config" in _describe(cycles, graph).splitlines()
    assert _upward(graph) == [
        "echoink.eval.bad imports echoink.rl.trainer (eval and rl are siblings)",
        "echoink.jsonl (layer 0) imports echoink.model.engine (layer 3)",
        "echoink.rl.trainer imports echoink.eval.bad (rl and eval are siblings)",
    ]
    assert [m for m in _module_names(src) if _layer(m) is None] == ["echoink.newthing"]


LAB_CLIENTS = {"echoink.cli_app"}
"""The modules of ``echoink`` allowed to import ``echoink_lab`` / ``echoink.testing``: the CLI's app layer,
which dispatches ``echoink demo``, ``data synth`` and ``model tiny`` (besides ``echoink.testing`` itself)."""
OUTSIDE = ("echoink_lab", "echoink.testing")


def _reaches_outside(src: Path) -> list[str]:
    """Each import of the lab or the tiny models from the library (``src``: the ``echoink`` folder)."""
    bad = []
    for name, path in _module_names(src).items():
        if name in LAB_CLIENTS:
            continue
        testing = name == "echoink.testing" or name.startswith("echoink.testing.")
        outside = OUTSIDE[:1] if testing else OUTSIDE  # the tiny models import one another
        for target in sorted(_imports(path, src)):
            if any(target == o or target.startswith(o + ".") for o in outside):
                bad.append(f"{name} imports {target}")
    return bad


def test_the_library_does_not_import_the_lab_or_the_tiny_models():
    bad = _reaches_outside(SRC)
    assert not bad, "the library reaches into the lab (only cli_app.lab may):\n" + "\n".join(bad)


def test_the_lab_rule_sees_a_planted_import(tmp_path: Path):
    """A module-level import of the lab, a function-level one of the tiny models (relative), and the
    tiny models importing the lab are found; the CLI's app layer and the tiny models' own imports are not."""
    planted = {
        "__init__.py": "",
        "cli_app.py": "def lab():\n    from echoink_lab import demo\n    from . import testing\n",
        "rl/__init__.py": "",
        "rl/trainer.py": "import echoink_lab.synth\n",
        "data/__init__.py": "",
        "data/check.py": "def f():\n    from ..testing.tiny import build_tiny\n",
        "testing/__init__.py": "from .tiny import build_tiny\n",
        "testing/tiny.py": "from echoink_lab.synth_scene import LETTERS\n",
    }
    src = tmp_path / "echoink"
    for name, text in planted.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    assert _reaches_outside(src) == [
        "echoink.data.check imports echoink.testing.tiny",
        "echoink.rl.trainer imports echoink_lab.synth",
        "echoink.testing.tiny imports echoink_lab.synth_scene",
    ]


FAMILY = r"\b(qwen2_5_omni\w*|qwen3_omni\w*|Qwen2_5Omni\w*|Qwen3Omni\w*|QWEN2_5|QWEN3\w*)\b"
"""A family's model types (config ``model_type``), transformers classes and geometry constants."""


def _family_namers() -> dict[str, list[str]]:
    found = {}
    for root in (SRC, LAB):
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(SRC if root == SRC else SRC.parent).as_posix()
            if rel.startswith(("model/", "testing/")):
                continue
            names = sorted(set(re.findall(FAMILY, _code_without_docstrings(path))))
            if names:
                found[rel] = names
    return found


def test_only_model_names_a_family():
    found = _family_namers()
    assert not found, f"family names outside model/ (ask model.families instead): {found}"


def test_the_family_guard_sees_a_violation(tmp_path: Path):
    planted = tmp_path / "bad.py"
    planted.write_text(
        '"""qwen2_5_omni in prose is fine."""\nif cfg.model_type == "qwen3_omni_moe_thinker":\n    g = QWEN2_5\n'
    )
    assert re.findall(FAMILY, _code_without_docstrings(planted)) == ["qwen3_omni_moe_thinker", "QWEN2_5"]


MAX_FUNCTION_LINES = 60


def _long_functions(roots: tuple[Path, ...], limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``package/path.py:function`` -> lines (``def`` to its last line, decorators not counted)."""
    out = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > limit:
                        out[f"{path.relative_to(root.parent).as_posix()}:{node.name}"] = lines
    return out


def test_no_function_over_60_lines():
    found = _long_functions((SRC, LAB))
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines (split them): {found}"


def test_the_length_check_sees_a_long_function(tmp_path: Path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "".join(f"        x{i} = {i}\n" for i in range(60))
    (pkg / "m.py").write_text(f"def short():\n    pass\n\n\nclass C:\n    def long(self):\n{body}")
    assert _long_functions((pkg,)) == {"pkg/m.py:long": 61}


def test_the_lab_is_a_client_no_cycle_through_the_cli():
    """``cli_app`` is the one way from the library into the lab, so the lab importing the CLI (the only
    route back) would close a cycle; within the lab, no cycles either."""
    back = {
        f"{name} imports {target}"
        for name, path in _module_names(LAB).items()
        for target in _imports(path, LAB)
        if target == "echoink.cli" or target.startswith(("echoink.cli_", "echoink.cli.", "echoink.__main__"))
    }
    assert not back, sorted(back)
    graph = _graph(LAB)
    assert not _cycles(graph), _describe(_cycles(graph), graph)
