"""The model boundary holds: only ``model/`` knows a model family.

No module under rl/ or eval/, nor sft.py, names a transformers model class, a tower, get_rope_index,
rope_deltas, the language model, a private transformers method or a media tensor key; eval/ and sft.py
import nothing from rl/ but the rewards.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "echoink"
GUARDED = sorted([*(SRC / "rl").glob("*.py"), *(SRC / "eval").glob("*.py"), SRC / "sft.py"])
FORBIDDEN = {
    "model class": r"\bQwen\w*(ForConditionalGeneration|Model|Thinker\w*)\b|\bPreTrainedModel\b",
    "tower": r"\b(get_audio_features|get_image_features|get_video_features|audio_tower|visual)\b",
    "positions": r"\b(get_rope_index|rope_deltas|position_ids)\b",
    "language model": r"\b(language_model|lm_head|get_output_embeddings|get_input_embeddings)\b",
    "private transformers method": r"\._(get_logits_processor|prepare_\w+|update_model_kwargs\w*)\b",
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


def _imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]  # e.g. ("echoink", "eval")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            out |= {module} if node.module else {f"{module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


@pytest.mark.parametrize(
    "path", [*sorted((SRC / "eval").glob("*.py")), SRC / "sft.py"], ids=lambda p: str(p.relative_to(SRC))
)
def test_eval_and_sft_import_only_the_rewards_from_rl(path: Path):
    rl = {m for m in _imports(path) if m == "echoink.rl" or m.startswith("echoink.rl.")}
    assert rl <= {"echoink.scoring.rewards"}, f"{path.name} imports {sorted(rl)}"


def test_the_guard_sees_a_violation(tmp_path: Path):
    """The scan must be able to fail: a planted tower call and rl import are found."""
    planted = tmp_path / "echoink" / "eval" / "bad.py"
    planted.parent.mkdir(parents=True)
    planted.write_text(
        '"""get_audio_features in prose is fine."""\nfrom ..rl.scoring import x\ny = m.get_rope_index\n'
    )
    code = _code_without_docstrings(planted)
    assert re.search(FORBIDDEN["positions"], code) and not re.search(FORBIDDEN["tower"], code)
    global SRC
    saved, SRC = SRC, tmp_path / "echoink"
    try:
        assert "echoink.rl.scoring" in _imports(planted)
    finally:
        SRC = saved
