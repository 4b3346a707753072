"""The GPU check: a random-init Qwen2.5-Omni-7B-size thinker in bf16 with LoRA, one prompt with 10 s
audio + a 224x224 image, G = 16, 256 new tokens forced (``min_new_tokens``): shared vs repeat step
time, tokens/s and peak memory, as JSON. ``--size tiny`` runs the same code on a CPU in seconds.

    python bench/gpu_check.py --size 7b      # on one GPU (bench/gpu_check.sh installs carried wheels first)
    python bench/gpu_check.py --size tiny    # anywhere
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from av_common import av_prompts, fixed_length_config, one_step


def build(size: str, device: str):
    """(thinker in bf16 on ``device`` with LoRA r=64 on the LLM, engine). 7b: the 7B's config, random init."""
    from peft import get_peft_model

    from echoink.config import ModelConfig
    from echoink.model import Engine
    from echoink.model.loading import lora_config
    from echoink.testing.tiny import build_processor, make_tiny, tiny_thinker_config, token_ids_for_config
    from echoink.testing.tokenizer import train_tokenizer

    if size == "tiny":
        model, processor = make_tiny(hidden=64, layers=2)
        model = model.to(device=device, dtype=torch.bfloat16)
    else:
        from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

        tokenizer = train_tokenizer(1024)
        ids = token_ids_for_config(tokenizer)
        small = tiny_thinker_config(64, 2, 1024, ids)  # the special-token ids the 7B config must agree on
        cfg = Qwen2_5OmniThinkerConfig(
            audio_token_index=ids["audio"], image_token_index=ids["image"], video_token_index=ids["video"],
            audio_start_token_id=ids["audio_bos"], audio_end_token_id=ids["audio_eos"], user_token_id=ids["user"],
        )  # fmt: skip
        cfg.vision_start_token_id, cfg.vision_end_token_id = (
            small.vision_start_token_id,
            small.vision_end_token_id,
        )
        cfg.text_config.vocab_size = 152_064
        torch.set_default_dtype(torch.bfloat16)
        with torch.device(device):
            model = Qwen2_5OmniThinkerForConditionalGeneration(cfg)
        torch.set_default_dtype(torch.float32)
        processor = build_processor(tokenizer)
    model = get_peft_model(model, lora_config(ModelConfig(lora_rank=64, lora_alpha=128), _family()))
    return model.train(), Engine(processor, "qwen2.5-omni")


def _family():
    from echoink.model import FAMILIES

    return FAMILIES.get("qwen2.5-omni")


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (the process's peak RSS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=("7b", "tiny"), default="7b")
    p.add_argument("--group-size", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    model, engine = build(a.size, device)
    _, prompts = av_prompts(engine, None, 1, 10.0)
    prompts = (engine, prompts.to(device, torch.bfloat16))
    gen = fixed_length_config(engine, model, a.new_tokens)
    info = {
        "bench": "gpu_check",
        "size": a.size,
        "device": device,
        "G": a.group_size,
        "new_tokens": a.new_tokens,
    }
    info |= {
        "prompt_tokens": int(prompts[1].input_ids.shape[1]),
        "build_s": round(time.perf_counter() - t0, 1),
    }
    info |= {"torch": torch.__version__, "machine": platform.machine()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    for mode in ("shared", "repeat"):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        steps = [
            one_step(model, prompts, a.group_size, gen, mode, beta=0.0, seed=r) for r in range(a.repeats + 1)
        ][1:]
        step_s = min(s["step"] for s in steps)
        tokens = steps[0]["completion_tokens"]
        row = info | {
            "mode": mode,
            "step_s": round(step_s, 3),
            "rollout_s": round(min(s["rollout"] for s in steps), 3),
        }
        row |= {"tokens_per_s": round(tokens / step_s, 1), "completion_tokens": tokens}
        row["peak_memory_gib"] = round(peak_memory_gib(device), 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
