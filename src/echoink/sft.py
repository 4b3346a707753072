"""Cold-start supervised fine-tuning on reference reasoning traces (loss on completion tokens only).

Same data, processor, model loading and checkpoint format as GRPO; the log-prob pass is the same
shared-prefix scorer with G = 1. It exists to give GRPO a base that emits the format and is partly
right (as R1-Omni's SFT cold start does).

Shapes: B prompts, T target tokens, L prompt tokens.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from transformers import get_constant_schedule_with_warmup

from .config import Config, save_config
from .data import Sample, load_split
from .data.media import MediaError
from .data.messages import decodable_messages
from .data.prompts import escape_control_tokens
from .errors import UserError
from .guards import check_weights
from .model import Engine
from .outdir import check_output_dir
from .progress import Progress
from .recipe_card import write_recipe
from .runlog import RunLog

log = logging.getLogger(__name__)


def target_ids(engine: Engine, samples: list[Sample], field: str) -> tuple[torch.Tensor, torch.Tensor]:
    """([B, T] trace tokens + <|im_end|>, right padded; [B, T] mask). A row without the field is an error."""
    end = engine.stop_token_ids()[0]  # <|im_end|>
    rows = []
    for s in samples:
        if not isinstance(s.metadata.get(field), str):
            raise UserError(f"sample {s.id}: no {field!r} text to fine-tune on")
        # Escaped as prompts are: a trace spelling "<|im_end|>" must not become a real stop mid-target.
        rows.append(engine.text_ids(escape_control_tokens(s.metadata[field])) + [end])
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), engine.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def sft(cfg: Config) -> Path:
    """Fine-tune ``cfg.model.path`` on ``cfg.data.train_path``'s traces; returns the output directory."""
    from .model.loading import load_policy, load_processor, save_model

    s = cfg.sft
    accelerator = Accelerator(mixed_precision=cfg.train.mixed_precision)
    set_seed(s.seed)
    out = Path(s.output_dir)
    # Every process looks before any writes; an earlier fine-tune's final/ and metrics are not replaced.
    check_output_dir(out, "sft.output_dir", "sft")
    samples = load_split(
        cfg.data.train_path, on_error=cfg.data.on_error, max_samples=cfg.data.max_samples
    ).samples
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:  # only once the data loaded: a refused run writes nothing
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    policy = load_policy(cfg.model, device=accelerator.device)
    engine = Engine.for_model(policy, load_processor(cfg.model.path))
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    scheduler = get_constant_schedule_with_warmup(optimizer, s.warmup_steps)
    scorer, optimizer = accelerator.prepare(engine.scorer(policy, "prefix"), optimizer)
    runlog = RunLog(out, enabled=accelerator.is_main_process)
    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(samples))
    cursor = 0
    policy.train()
    bar = Progress(s.max_steps, "SFT", unit="step", quiet=not accelerator.is_main_process)
    for step in range(1, s.max_steps + 1):
        t0 = time.perf_counter()
        if cursor + s.batch_size > len(order):
            order, cursor = rng.permutation(len(samples)), 0
        batch = [samples[i] for i in order[cursor : cursor + s.batch_size]]
        cursor += s.batch_size
        loss, accuracy = sft_step(scorer, engine, batch, cfg, accelerator.device)
        accelerator.backward(loss)
        grad_norm = float(accelerator.clip_grad_norm_(params, s.max_grad_norm))
        optimizer.step()
        check_weights(policy, step)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        metrics = {"loss": loss.item(), "token_accuracy": accuracy, "grad_norm": grad_norm}
        metrics.update(lr=scheduler.get_last_lr()[0], step_time=time.perf_counter() - t0)
        runlog.metrics(step, metrics)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}", tok_acc=f"{accuracy:.2f}")
        bar.update()
        if s.save_every and step % s.save_every == 0 and step < s.max_steps and accelerator.is_main_process:
            save_model(accelerator.unwrap_model(scorer).model, engine.processor, out / f"step-{step:06d}")
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_model(accelerator.unwrap_model(scorer).model, engine.processor, out / "final")
        write_recipe(cfg, out / "final", "sft")  # eval follows the training's prompt and budgets
    return out


def sft_step(scorer, engine: Engine, batch: list[Sample], cfg: Config, device) -> tuple[torch.Tensor, float]:
    """Mean negative log-likelihood of the traces' tokens, and greedy token accuracy (approximate: exp(logp) > 0.5)."""
    d = cfg.data
    batch, messages = decodable_messages(  # a file broken since loading: skipped or an error (data.on_error)
        batch, d.template, d.max_audio_seconds, d.max_pixels, d.on_error, video=d.video(),
        geometry=engine.geometry,
    )  # fmt: skip
    if not batch:
        raise MediaError("every row of this SFT batch failed to decode (see the warnings above)")
    prompts = engine.encode(messages).to(device)
    ids, mask = target_ids(engine, batch, cfg.sft.trace_field)
    ids, mask = ids.to(device), mask.to(device).float()
    logp, _ = scorer(prompts, ids, 1, 1.0)  # [B, T]
    loss = -(logp * mask).sum() / mask.sum()
    accuracy = float(((logp.detach().exp() > 0.5).float() * mask).sum() / mask.sum())
    return loss, accuracy
