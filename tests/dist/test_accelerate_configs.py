"""Every shipped accelerate / DeepSpeed config parses with accelerate's own readers and fits the trainer.

No GPU and no DeepSpeed install needed: the YAMLs go through accelerate's ``load_config_from_file``,
the JSONs through ``HfDeepSpeedConfig`` and the trainer's ``deepspeed_problems``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from accelerate.utils.deepspeed import HfDeepSpeedConfig

from echoink.config import load_config
from echoink.rl.distributed import deepspeed_problems

ROOT = Path(__file__).parents[2]
ALL = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
CONFIGS = [
    p for p in ALL if not p.stem.endswith("_cpu")
]  # the GPU launches; *_cpu: tests/dist/test_sharded.py
PAPER = load_config(ROOT / "configs" / "echoink_r1_7b.yaml")
PAPER_PROMPTS_PER_STEP = 8  # EchoInk-R1: 8 GPUs x 1 prompt x G=16
# A launch made for another shipped recipe is checked against that recipe (its header's launch line).
RECIPE_OF = {"deepspeed_zero3_offload": load_config(ROOT / "configs" / "qwen3_omni_gspo_avqa.yaml")}


def test_the_expected_configs_ship():
    names = {p.stem for p in CONFIGS}
    assert {"ddp", "deepspeed_zero2", "deepspeed_zero3"} <= names
    assert any("multinode" in n and "deepspeed" in n for n in names) and "ddp_multinode" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_fits_the_paper_recipe(path):
    cfg = load_config_from_file(str(path))
    if cfg.distributed_type == DistributedType.DEEPSPEED:
        # accelerate launch refuses a mixed_precision next to a deepspeed_config_file (the JSON's
        # bf16.enabled rules, checked below); it reads back as the default "no".
        assert "mixed_precision" not in yaml.safe_load(path.read_text())
    else:
        assert cfg.mixed_precision == PAPER.train.mixed_precision  # the trainer passes its own precision too
    recipe = RECIPE_OF.get(path.stem, PAPER)
    per_node = cfg.num_processes // cfg.num_machines
    assert cfg.num_processes == per_node * cfg.num_machines and per_node == 8
    if recipe is PAPER:
        assert (
            per_node * PAPER.train.prompts_per_step == PAPER_PROMPTS_PER_STEP
        )  # one node = the paper's batch
    if cfg.num_machines > 1:
        assert cfg.main_process_ip and cfg.main_process_port
    if cfg.distributed_type != DistributedType.DEEPSPEED:
        assert not cfg.deepspeed_config
        return
    ds_path = ROOT / cfg.deepspeed_config["deepspeed_config_file"]  # relative to the repo root
    ds = json.loads(ds_path.read_text())
    assert deepspeed_problems(ds, recipe) == []
    hf = HfDeepSpeedConfig(str(ds_path))
    stage = 3 if "zero3" in path.stem else 2
    assert hf.get_value("zero_optimization.stage") == stage
    assert hf.get_value("zero_optimization.overlap_comm") is True
    if stage == 3:  # the paper's setup: full 16-bit weights gathered when saving
        assert hf.is_zero3() and hf.get_value("zero_optimization.stage3_gather_16bit_weights_on_model_save")


def test_deepspeed_problems_names_each_mismatch():
    bad = {
        "gradient_accumulation_steps": 4,
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_clipping": 1.0,
        "bf16": {"enabled": False},
    }
    problems = " | ".join(deepspeed_problems(bad, PAPER))
    for word in (
        "gradient_accumulation_steps",
        "train_micro_batch_size_per_gpu",
        "gradient_clipping",
        "bf16",
    ):
        assert word in problems
    split = load_config(
        ROOT / "configs" / "echoink_r1_7b.yaml", ["train.prompts_per_step=4", "train.mini_batch_prompts=2"]
    )
    assert any(
        "mini_batch_prompts" in p for p in deepspeed_problems({"train_micro_batch_size_per_gpu": 1}, split)
    )


def test_the_cpu_zero3_config_is_the_paper_engine_in_fp32():
    """configs/accelerate/deepspeed_zero3_cpu.yaml (bench/sharded_cpu.sh): 2 processes, and its JSON is
    zero3.json but for precision and the persistence threshold (so the CPU run shards every weight)."""
    cfg = load_config_from_file(str(ROOT / "configs" / "accelerate" / "deepspeed_zero3_cpu.yaml"))
    assert cfg.distributed_type == DistributedType.DEEPSPEED and cfg.num_processes == 2 and not cfg.use_cpu
    cpu = json.loads((ROOT / cfg.deepspeed_config["deepspeed_config_file"]).read_text())
    gpu = json.loads((ROOT / "configs" / "accelerate" / "deepspeed" / "zero3.json").read_text())
    assert deepspeed_problems(cpu, load_config(ROOT / "configs" / "tiny_cpu.yaml")) == []
    assert "bf16" not in cpu and cpu["zero_optimization"]["stage3_param_persistence_threshold"] == 0
    for section in (cpu, gpu):
        (
            section.pop("bf16", None),
            section.pop("gradient_clipping"),
        )  # the trainer fills "auto" from the recipe
        section["zero_optimization"].pop("stage3_param_persistence_threshold")
    assert cpu == gpu
