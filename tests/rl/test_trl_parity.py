"""Parity with TRL 1.16's GRPOTrainer: advantages, per-token log-probs, loss, metrics and gradients.

Approach. TRL keeps its maths inside trainer methods, so the test builds a real ``GRPOTrainer``
around a tiny randomly initialised Qwen2 causal LM (saved to a temp dir, so TRL builds its reference
model from the same weights) and a word-level tokenizer made here; nothing is downloaded. Fixed
completions enter through TRL's own ``rollout_func`` hook, and the rewards TRL computes are our
``accuracy_reward`` and ``format_reward`` with weights 1 and 0.5. Then, on the TRL side:

- ``trainer._generate_and_score_completions(rows)`` -> TRL's padded ids/masks, reference log-probs
  and advantages (its ``scale_rewards`` code);
- ``trainer._get_per_token_logps_and_entropies`` -> TRL's per-token log-probs (its fused LM head);
- ``trainer._compute_loss(model, batch)`` -> TRL's loss for ``loss_type`` grpo / bnpo / dr_grpo / dapo
  with beta > 0, and its logged clip ratios and KL. Off-policy ``old_per_token_logps`` are injected
  so the ratio is not 1 and both clips fire.

On our side the same model's plain logits go through ``token_logprobs``, ``score``,
``group_advantages`` and ``policy_loss``. Loss, gradients of every parameter, advantages and metrics
must agree to 1e-5. Nothing of TRL's formulas is re-typed here. Two TRL 1.16 defaults are turned
off because they are not the paper's maths: bf16 autocast (we compare float32) and
``use_bias_correction_kl`` (KL multiplied by the importance ratio; identical when μ = 1, ratio 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers 5 deprecations inside TRL
trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from echoink.model.logprobs import token_logprobs  # noqa: E402
from echoink.rl.algos import LossSpec, group_advantages, policy_loss  # noqa: E402
from echoink.scoring.rewards import accuracy_reward, format_reward, score  # noqa: E402

G, MAX_LEN, TEMPERATURE = 4, 16, 0.9  # MAX_LEN != padded T (13), so Dr. GRPO's constant is checked
WEIGHTS = {"accuracy": 1.0, "format": 0.5}
WORDS = ["[PAD]", "[EOS]", "<think>", "</think>", "<answer>", "</answer>", "A", "B", "C", "D"]
WORDS += ["dog", "barks", "bird", "sings", "the", "so", "hmm", "which", "sound", "?", "or"]
PROMPTS = ["which sound ?", "the dog barks or the bird sings ?"]  # B = 2, different lengths
SOLUTIONS = ["<answer>C</answer>", "<answer>A</answer>"]
COMPLETIONS = [  # G per prompt, varied lengths, rewards not constant within a group
    "<think> dog barks </think> <answer> C </answer> [EOS]",
    "<think> hmm </think> <answer> B </answer> [EOS]",
    "C [EOS]",
    "<think> the bird sings so </think> <answer> C </answer> <answer> D </answer> [EOS]",
    "<think> dog </think> <answer> A </answer> [EOS]",
    "<answer> A </answer> [EOS]",
    "<think> hmm the bird </think> <answer> A </answer> [EOS]",
    "so hmm [EOS]",
]
# (loss_type, scale_rewards, our aggregation)
CASES = [
    ("grpo", "group", "seq-mean-token-mean"),
    ("bnpo", "batch", "token-mean"),
    ("dr_grpo", "none", "seq-mean-token-sum-norm"),
    ("dapo", "group", "token-mean"),
]


def _tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="hmm"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", eos_token="[EOS]")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(WORDS),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    path = tmp_path_factory.mktemp("tiny_qwen2")
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def _fixed_rollout(prompts: list[str], trainer) -> dict:
    tok = trainer.processing_class
    comp_ids = [tok(c)["input_ids"] for c in COMPLETIONS]
    assert len(prompts) == len(COMPLETIONS)
    return {
        "prompt_ids": [tok(p)["input_ids"] for p in prompts],
        "completion_ids": comp_ids,
        "logprobs": None,
    }


def _trainer(model_dir: Path, tmp_path: Path, loss_type: str, scale: str, is_level: str = "token"):
    args = trl.GRPOConfig(
        importance_sampling_level=is_level,
        output_dir=str(tmp_path),
        per_device_train_batch_size=len(COMPLETIONS),
        num_generations=G,
        max_completion_length=MAX_LEN,
        temperature=TEMPERATURE,
        beta=0.05,
        use_bias_correction_kl=False,  # TRL 1.16 default True scales KL by the ratio; the paper's GRPO does not
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type=loss_type,
        scale_rewards=scale,
        reward_weights=list(WEIGHTS.values()),
        report_to="none",
        use_cpu=True,
        bf16=False,  # TRL defaults to bf16 autocast; compare float32 maths
        logging_steps=1,
        save_strategy="no",
    )
    rows = [{"prompt": p, "solution": s} for p, s in zip(PROMPTS, SOLUTIONS, strict=True)]
    trainer = trl.GRPOTrainer(
        model=str(model_dir),
        reward_funcs=[accuracy_reward, format_reward],
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=_tokenizer(),
        rollout_func=_fixed_rollout,
    )
    # Make the policy differ from TRL's reference copy so the KL term is not zero.
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop in a real run
    return trainer, [row for row in rows for _ in range(G)]


def _completion_logps(model, batch: dict) -> torch.Tensor:
    """Our log-probs of the completion tokens from the model's ordinary logits, [N, T]."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    T = batch["completion_ids"].shape[1]
    logits = model(input_ids=ids, attention_mask=att).logits[:, -T - 1 : -1]  # [N, T, V]
    return token_logprobs(logits, batch["completion_ids"], TEMPERATURE)


@pytest.mark.parametrize(("loss_type", "scale", "agg"), CASES)
def test_matches_trl_grpo_trainer(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss_type: str, scale: str, agg: str
) -> None:
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental" in TRL
    trainer, rows = _trainer(model_dir, tmp_path, loss_type, scale)
    model = trainer.model
    batch = trainer._generate_and_score_completions(rows)
    mask = batch["completion_mask"]
    assert mask.sum(1).unique().numel() > 2  # padding is exercised

    # Advantages: our rewards + combiner + group_advantages vs TRL's reward calling and scaling.
    texts = trainer.processing_class.batch_decode(batch["completion_ids"], skip_special_tokens=True)
    _, total, _ = score(texts, rows, WEIGHTS)
    adv, _ = group_advantages(total, G, scale, eps=1e-4)  # TRL divides by std + 1e-4
    assert adv.abs().sum() > 0
    torch.testing.assert_close(adv, batch["advantages"], atol=1e-5, rtol=1e-5)

    # Per-token log-probs: our chunked log-softmax on plain logits vs TRL's fused LM head.
    logp = _completion_logps(model, batch)
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    att = torch.cat([batch["prompt_mask"], mask], dim=1)
    with torch.no_grad():
        trl_logp, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, att, mask.shape[1])
        ref_logp = _completion_logps(trainer.ref_model, batch)
    m = mask.bool()
    torch.testing.assert_close(logp[m], trl_logp[m], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref_logp[m], batch["ref_per_token_logps"][m], atol=1e-5, rtol=1e-5)

    _assert_loss_parity(trainer, batch, adv, ref_logp, agg)


def _assert_loss_parity(trainer, batch: dict, adv, ref_logp, agg: str, is_level: str = "token") -> None:
    """Loss, gradients of every parameter and logged clip ratios / KL: ours vs TRL's ``_compute_loss``."""
    model, mask = trainer.model, batch["completion_mask"]
    logp = _completion_logps(model, batch)
    # Loss, off-policy so both clips fire: inject the same old log-probs into TRL's batch.
    gen = torch.Generator().manual_seed(7)
    old = logp.detach() + torch.randn(logp.shape, generator=gen) * 0.3
    if is_level == "sequence":  # token noise averages out over a sequence: shift whole sequences too
        old = old + torch.randn(logp.shape[0], 1, generator=gen) * 0.5
    batch["old_per_token_logps"] = old
    model.zero_grad()
    trl_loss = trainer._compute_loss(model, batch)
    trl_loss.backward()
    trl_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    spec = LossSpec(0.2, 0.28, beta=0.05, kl_kind="k3", agg=agg, max_len=MAX_LEN, is_level=is_level)
    ours, metrics = policy_loss(_completion_logps(model, batch), old, adv, mask, spec, ref_logp=ref_logp)
    ours.backward()
    torch.testing.assert_close(ours, trl_loss, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), trl_grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)

    logged = trainer._metrics["train"]
    assert metrics["clip_frac_low"] > 0 and metrics["clip_frac_high"] > 0
    assert metrics["clip_frac_low"].item() == pytest.approx(logged["clip_ratio/low_mean"][-1], abs=1e-6)
    assert metrics["clip_frac_high"].item() == pytest.approx(logged["clip_ratio/high_mean"][-1], abs=1e-6)
    assert metrics["kl"].item() == pytest.approx(logged["kl"][-1], rel=1e-5)


@pytest.mark.parametrize(("loss_type", "scale", "agg"), [CASES[0], CASES[1]])
def test_gspo_matches_trl_sequence_level(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss_type: str, scale: str, agg: str
) -> None:
    """GSPO: TRL's ``importance_sampling_level="sequence"`` (one length-normalised ratio per completion)."""
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    trainer, rows = _trainer(model_dir, tmp_path, loss_type, scale, is_level="sequence")
    batch = trainer._generate_and_score_completions(rows)
    adv = batch["advantages"]  # checked against ours in test_matches_trl_grpo_trainer
    with torch.no_grad():
        ref_logp = _completion_logps(trainer.ref_model, batch)
    _assert_loss_parity(trainer, batch, adv, ref_logp, agg, is_level="sequence")
