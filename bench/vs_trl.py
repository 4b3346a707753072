"""Our GRPO trainer vs TRL's GRPOTrainer on the same text-only causal LM (issue 9).

One tiny Qwen2-architecture LM (built here, random weights) and the same text prompts for both:

- TRL trains a ``Qwen2ForCausalLM`` with those weights;
- echoink trains a Qwen2.5-Omni thinker whose language model holds the SAME weights (our trainer takes
  thinkers; with text-only prompts its three M-RoPE position rows are equal, which is plain RoPE, and
  the audio/vision towers never run). Before timing, the two models' logits on a prompt must agree
  to 1e-5, so both sides do the same maths.

Settings (both): G=8, 4 prompts per step, at most 64 completion tokens sampled at T=1, β=0.04 (a
frozen reference copy), μ=1, loss "grpo" (= our seq-mean-token-mean), rewards accuracy + format,
fp32, same thread count, constant lr, no weight decay, grad-norm clip 1. Stops: ours at <|im_end|> or
<|endoftext|>, TRL at the tokenizer's eos; the random model rarely emits either, and throughput is
counted in completion tokens actually generated. Each side runs in its own process, 3 warm-up steps then 20 timed steps
(``--warmup-steps``, ``--timed-steps``), alternated ``--rounds`` times. Reported: median step time, completion tokens/s, peak RSS, and the
throughput ratio ours/TRL. Target: >= 1.5.

    .venv/bin/python bench/vs_trl.py --threads 1

Prints one JSON line per run and per side, one for the ratio, then a readable table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARMUP, TIMED = 3, 20
G, PROMPTS_PER_STEP, MAX_TOKENS, BETA, LR = 8, 4, 64, 0.04, 1e-5


def build(work: Path, hidden: int, layers: int) -> None:
    """The thinker (ours), the same LM as Qwen2ForCausalLM (TRL's), text-only prompts, TRL's prompt strings."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from echoink.data import build_messages, load_split
    from echoink.model.loading import load_processor, load_thinker
    from echoink.testing.tiny import build_tiny
    from echoink_lab.synth import SynthSpec, benchmark_corpus, generate

    build_tiny(work / "thinker", hidden=hidden, layers=layers, extra_corpus=benchmark_corpus())
    thinker, processor = load_thinker(work / "thinker"), load_processor(work / "thinker")
    text = thinker.config.text_config
    qwen2 = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=text.vocab_size,
            hidden_size=text.hidden_size,
            intermediate_size=text.intermediate_size,
            num_hidden_layers=text.num_hidden_layers,
            num_attention_heads=text.num_attention_heads,
            num_key_value_heads=text.num_key_value_heads,
            max_position_embeddings=text.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": text.rope_parameters["rope_theta"]},
            rms_norm_eps=text.rms_norm_eps,
            tie_word_embeddings=False,
            pad_token_id=text.pad_token_id,
        )
    )
    state = {f"model.{k}": v for k, v in thinker.model.language_model.state_dict().items()}
    state["lm_head.weight"] = thinker.lm_head.weight
    missing, unexpected = qwen2.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    qwen2.generation_config = thinker.generation_config
    qwen2.save_pretrained(work / "qwen2")
    processor.tokenizer.save_pretrained(work / "qwen2")

    generate(work / "bench", {"train": 120}, SynthSpec(seed=0, difficulty="easy"))
    rows = json.loads((work / "bench" / "train.json").read_text())
    for row in rows:
        row["data_type"], row["path"] = "text", {}
    (work / "bench" / "train.json").write_text(json.dumps(rows))
    samples = load_split(work / "bench" / "train.json").samples
    prompts = [
        processor.apply_chat_template(
            build_messages(s, "reasoning"), tokenize=False, add_generation_prompt=True
        )
        for s in samples
    ]
    trl_rows = [{"prompt": p, "solution": s.solution} for p, s in zip(prompts, samples, strict=True)]
    (work / "trl_rows.json").write_text(json.dumps(trl_rows))

    ids = processor.tokenizer(prompts[:2], return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        ours = thinker(**ids).logits
        theirs = qwen2.eval()(**ids).logits
    mask = ids["attention_mask"].bool()
    gap = (ours - theirs)[mask].abs().max().item()
    assert gap < 1e-5, f"the two models disagree by {gap}"


def run_ours(work: Path, warmup: int, timed: int) -> dict:
    from echoink.config import load_config
    from echoink.rl.trainer import train

    out = Path(tempfile.mkdtemp(prefix="ours-", dir=work))
    overrides = [
        f"data.train_path={work / 'bench' / 'train.json'}",
        # Training steps only, as TRL's side: the recipe's validation split (runs/bench/val.json) is
        # not in a fresh clone, and its first validation (step 25) came after the timed steps anyway.
        "data.val_path=",
        "train.eval_every=0",
        f"model.path={work / 'thinker'}",
        f"rollout.num_generations={G}",
        f"rollout.max_new_tokens={MAX_TOKENS}",
        "rollout.temperature=1.0",
        f"algo.beta={BETA}",
        "algo.num_iterations=1",
        "algo.loss_agg=seq-mean-token-mean",
        "algo.scale_rewards=group",
        f"train.output_dir={out}",
        f"train.max_steps={warmup + timed}",
        f"train.prompts_per_step={PROMPTS_PER_STEP}",
        f"train.lr={LR}",
        "train.lr_schedule=constant",
        "train.weight_decay=0.0",
        "train.max_grad_norm=1.0",
        "train.save_every=100000",
        "train.rollouts_every=100000",
    ]
    train(load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny_cpu.yaml", overrides))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["step"] > warmup]
    return {
        "step_s": [r["step_time"] for r in rows],
        "tokens": [r["completions/mean_length"] * G * PROMPTS_PER_STEP for r in rows],
    }


def run_trl(work: Path, warmup: int, timed: int) -> dict:
    import datasets
    import trl
    from transformers import AutoTokenizer, TrainerCallback

    from echoink.scoring.rewards import accuracy_reward, format_reward

    class StepTimes(TrainerCallback):
        def __init__(self) -> None:
            self.step_s: list[float] = []
            self.lengths: list[float] = []

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.step_s.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.lengths.append(logs["completions/mean_length"])

    tokenizer = AutoTokenizer.from_pretrained(work / "qwen2", padding_side="left")
    args = trl.GRPOConfig(
        output_dir=str(Path(tempfile.mkdtemp(prefix="trl-", dir=work))),
        per_device_train_batch_size=G * PROMPTS_PER_STEP,  # completions per step
        num_generations=G,
        max_completion_length=MAX_TOKENS,
        temperature=1.0,
        top_p=1.0,
        top_k=0,  # no top-k, as ours (transformers would otherwise fill in 50)
        beta=BETA,
        use_bias_correction_kl=False,  # the paper's KL (identical when μ = 1)
        num_iterations=1,
        loss_type="grpo",
        scale_rewards="group",
        learning_rate=LR,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=warmup + timed,
        report_to="none",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        seed=0,
    )
    timer = StepTimes()
    trainer = trl.GRPOTrainer(
        model=str(work / "qwen2"),
        reward_funcs=[accuracy_reward, format_reward],
        args=args,
        train_dataset=datasets.Dataset.from_list(json.loads((work / "trl_rows.json").read_text())),
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    tokens = [n * G * PROMPTS_PER_STEP for n in timer.lengths]
    return {"step_s": timer.step_s[warmup:], "tokens": tokens[warmup:]}


def side_summary(res: dict) -> dict:
    return {
        "median_step_s": round(statistics.median(res["step_s"]), 4),
        "tokens_per_s": round(sum(res["tokens"]) / sum(res["step_s"]), 1),
        "mean_completion_tokens": round(statistics.mean(res["tokens"]) / (G * PROMPTS_PER_STEP), 1),
        "peak_rss_mb": res["peak_rss_mb"],
    }


def child(side: str, work: Path, threads: int, steps: tuple[int, int]) -> None:
    import torch

    torch.set_num_threads(threads)
    res = (run_ours if side == "ours" else run_trl)(work, *steps)
    res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print("RESULT " + json.dumps(res))


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "trl", "accelerate")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--warmup-steps", type=int, default=WARMUP, help="untimed steps per run")
    p.add_argument("--timed-steps", type=int, default=TIMED, help="timed steps per run")
    p.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.side:
        child(a.side, a.work, a.threads, (a.warmup_steps, a.timed_steps))
        return
    work = Path(tempfile.mkdtemp(prefix="echoink-vs-trl-"))
    build(work, a.hidden, a.layers)
    env = os.environ | {"OMP_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false"}
    runs: dict[str, list[dict]] = {"ours": [], "trl": []}
    for r in range(a.rounds):
        for side in ("ours", "trl"):
            cmd = [sys.executable, __file__, "--side", side, "--work", str(work), "--threads", str(a.threads)]
            cmd += ["--warmup-steps", str(a.warmup_steps), "--timed-steps", str(a.timed_steps)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"{side} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            res = json.loads(lines[-1][len("RESULT ") :])
            runs[side].append(res)
            print(json.dumps({"bench": "vs_trl", "side": side, "round": r} | side_summary(res)), flush=True)
    common = {
        "bench": "vs_trl", "G": G, "prompts_per_step": PROMPTS_PER_STEP, "max_tokens": MAX_TOKENS,
        "beta": BETA, "hidden": a.hidden, "layers": a.layers, "threads": a.threads,
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d"), "versions": versions(),
    }  # fmt: skip
    summary = {}
    for side, results in runs.items():
        merged = {k: [x for res in results for x in res[k]] for k in ("step_s", "tokens")}
        merged["peak_rss_mb"] = max(res["peak_rss_mb"] for res in results)
        summary[side] = side_summary(merged)
        print(json.dumps(common | {"side": side, "rounds": a.rounds} | summary[side]))
    ratio = summary["ours"]["tokens_per_s"] / summary["trl"]["tokens_per_s"]
    print(json.dumps(common | {"side": "ratio_ours_over_trl", "throughput": round(ratio, 2)}))
    print(f"\n{'':<8}{'median step s':>15}{'tokens/s':>12}{'mean tokens':>13}{'peak RSS MB':>13}")
    for side, s in summary.items():
        print(
            f"{side:<8}{s['median_step_s']:>15.3f}{s['tokens_per_s']:>12.1f}"
            f"{s['mean_completion_tokens']:>13.1f}{s['peak_rss_mb']:>13.1f}"
        )
    print(f"throughput ours / TRL: {ratio:.2f} (target >= 1.5)")


if __name__ == "__main__":
    main()
