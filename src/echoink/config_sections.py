"""The recipe's sections, one dataclass per concern; each field is documented once, by the string under it.

``echoink.config`` assembles them into ``Config`` and loads YAML recipes; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UserError


class ConfigError(UserError):
    """A recipe or override is invalid; the message names the field."""


def _check(cond: bool, name: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{name}: {msg}")


@dataclass
class DataConfig:
    train_path: str = ""
    """Training split in the AVQA-R1-6K schema: a JSON list or JSONL file, or a split directory as the
    dataset extracts (``AVQA_R1/train``, holding ``omni_rl_format_train.json``); media paths are relative to it."""
    val_path: str = ""
    """Validation split (same forms as ``train_path``), evaluated greedily every ``train.eval_every`` steps."""
    template: str = "reasoning"
    """Prompt template name (see ``echoink.data.prompts.TEMPLATES``)."""
    on_error: str = "strict"
    """What a bad row does: ``strict`` stops at the first, ``skip`` skips it and reports every skip. A
    file that fails only at run time (GRPO) is named and stands in as the row's text with no weight, so
    every process keeps its batch shape."""
    max_audio_seconds: float | None = None
    """Cut audio to this many seconds (EchoInk cut at 10 s), a video's soundtrack too (and its frames with
    it: one span); ``None`` keeps the whole clip."""
    max_pixels: int = 224 * 224
    """Image budget in pixels after rounding each side to the model family's grid (qwen-omni-utils'
    ``smart_resize``; one image token per cell: 28 px for Qwen2.5-Omni, 32 px for Qwen3-Omni; at least the
    processor's minimum, 3,136 / 4,096 px): at most ``max_pixels / cell²`` image tokens, resized once.
    EchoInk's images got 200,704 (Qwen2.5: at most 256 tokens; a 4:3 photo gets 13 x 18 = 234)."""
    max_samples: int | None = None
    """Use only the first N rows (after validation); ``None`` uses all."""
    video_fps: float = 2.0
    """Video rows: frames sampled per second (the frame on screen at each 1/fps step)."""
    max_frames: int = 16
    """Video rows: at most this many frames (an even count: two frames make one temporal patch). A clip
    longer than ``max_frames / video_fps`` seconds (or ``max_audio_seconds``, with a soundtrack) is cut to
    that span, frames and soundtrack alike; ``echoink data check`` lists the clips that will be cut."""
    max_video_pixels: int = 128 * 28 * 28
    """Video rows: each frame resized once onto the model family's grid (as images) within this many pixels."""

    def video(self):
        """These video settings as the data layer takes them."""
        from .data.messages import VideoSettings

        return VideoSettings(self.video_fps, self.max_frames, self.max_video_pixels)

    def __post_init__(self) -> None:
        _check(self.video_fps > 0, "data.video_fps", "must be > 0")
        _check(self.max_frames >= 2, "data.max_frames", "must be >= 2 (two frames per temporal patch)")
        _check(self.max_video_pixels >= 28 * 28, "data.max_video_pixels", "must be at least 784")
        _check(
            self.on_error in ("strict", "skip"),
            "data.on_error",
            f"must be 'strict' or 'skip', got {self.on_error!r}",
        )
        _check(
            self.max_audio_seconds is None or self.max_audio_seconds > 0,
            "data.max_audio_seconds",
            "must be > 0 or null",
        )
        _check(self.max_pixels >= 28 * 28, "data.max_pixels", "must be at least 784 (one 28x28 patch group)")
        _check(self.max_samples is None or self.max_samples > 0, "data.max_samples", "must be > 0 or null")


@dataclass
class ModelConfig:
    path: str = ""
    """Local directory of a Qwen2.5-Omni checkpoint (full or thinker-only); hubs are never contacted."""
    dtype: str = "float32"
    """Parameter dtype: float32, bfloat16 or float16."""
    attn_implementation: str = "sdpa"
    """Attention kernel: sdpa, eager or flash_attention_2."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    freeze_audio_tower: bool = False
    """Keep the audio encoder's weights fixed (EchoInk trains everything)."""
    freeze_vision_tower: bool = False
    """Keep the vision encoder's weights fixed."""
    freeze_llm: bool = False
    """Keep the language model's weights fixed."""
    lora_rank: int = 0
    """LoRA rank; 0 trains full weights. With LoRA the reference policy is the base with adapters disabled."""
    lora_alpha: int = 32
    """LoRA scaling numerator."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch."""
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names LoRA wraps (default: the LLM's attention and MLP projections)."""

    def __post_init__(self) -> None:
        _check(
            self.dtype in ("float32", "bfloat16", "float16"), "model.dtype", f"unknown dtype {self.dtype!r}"
        )
        _check(
            self.attn_implementation in ("sdpa", "eager", "flash_attention_2"),
            "model.attn_implementation",
            f"unknown kernel {self.attn_implementation!r}",
        )
        _check(self.lora_rank >= 0, "model.lora_rank", "must be >= 0")
        _check(0.0 <= self.lora_dropout < 1.0, "model.lora_dropout", "must be in [0, 1)")


@dataclass
class RolloutConfig:
    num_generations: int = 8
    """G: completions sampled per prompt."""
    max_new_tokens: int = 128
    """Longest completion; longer ones are truncated (see ``algo.mask_truncated_completions``)."""
    temperature: float = 1.0
    """Sampling temperature (the logprob passes divide logits by the same value)."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    top_k: int = 0
    """Top-k sampling; 0 disables."""
    sharing: str = "prefix"
    """A name of ``model.passes.SHARING_MODES``: what the G completions of a prompt share: ``prefix`` (towers + prompt prefill once per prompt),
    ``towers`` (towers once, then prompt + completion G times) or ``repeat`` (everything G times, as
    EchoInk/TRL do; for equivalence tests and benchmarks). ``prefix`` stays on with gradient
    checkpointing (the prompt runs once, the completions are checkpointed in chunks of
    ``train.completions_per_pass``)."""
    engine: str = "hf"
    """What samples the rollouts (and validation): ``hf`` (our shared-prefix decode loop on the policy
    itself) or ``vllm`` (a colocated vLLM engine in each training process: one request per prompt with
    n = G, the policy's weights pushed into it before every rollout; needs vLLM installed and text heads
    of at least 32 on its CPU build). The trainer's log-prob passes are ours either way; with ``vllm``
    ``rollout/logprob_diff_mean`` and ``rollout/logprob_diff_max`` measure the two engines' mismatch and
    ``algo.rollout_is_cap`` corrects for it."""
    vllm_gpu_memory_utilization: float = 0.3
    """``rollout.engine: vllm`` on a GPU: the fraction of GPU memory vLLM may take (weights + KV cache);
    the trainer needs the rest. On a CPU the KV cache is ``VLLM_CPU_KVCACHE_SPACE`` GiB (default here 1)."""
    vllm_tensor_parallel_size: int = 1
    """``rollout.engine: vllm``: GPUs one engine spans (1: each training process has its own engine)."""
    vllm_max_model_len: int = 0
    """``rollout.engine: vllm``: longest prompt + completion the engine accepts; 0 takes the model's own."""
    vllm_sleep: bool = False
    """``rollout.engine: vllm`` on a GPU: free vLLM's memory after each rollout (sleep mode, level 1) and
    take it back before the next weight push; trades a wake-up per step for memory in the training passes."""

    def __post_init__(self) -> None:
        _check(self.engine in ("hf", "vllm"), "rollout.engine", f"must be hf or vllm, got {self.engine!r}")
        _check(
            0 < self.vllm_gpu_memory_utilization <= 0.95,
            "rollout.vllm_gpu_memory_utilization",
            "must be in (0, 0.95] (the trainer needs memory too)",
        )
        _check(
            1 <= self.vllm_tensor_parallel_size <= 64,
            "rollout.vllm_tensor_parallel_size",
            "must be in [1, 64]",
        )
        _check(
            self.vllm_max_model_len == 0 or self.vllm_max_model_len > self.max_new_tokens,
            "rollout.vllm_max_model_len",
            "must be 0 (the model's own) or longer than rollout.max_new_tokens",
        )
        _check(
            self.num_generations >= 2,
            "rollout.num_generations",
            "must be >= 2 (advantages are relative within a group)",
        )
        _check(self.max_new_tokens >= 1, "rollout.max_new_tokens", "must be >= 1")
        _check(self.temperature > 0, "rollout.temperature", "must be > 0")
        _check(0 < self.top_p <= 1, "rollout.top_p", "must be in (0, 1]")
        _check(self.top_k >= 0, "rollout.top_k", "must be >= 0")


@dataclass
class AlgoConfig:
    rewards: dict[str, float] = field(default_factory=lambda: {"accuracy": 1.0, "format": 1.0})
    """Reward name -> weight (paper: accuracy 1, format 1)."""
    beta: float = 0.0
    """KL penalty weight to the frozen reference (paper: 0.001); 0 loads no reference model."""
    kl_estimator: str = "k3"
    """KL estimator, an entry of ``rl.algos.KL_ESTIMATORS`` (k3 is the GRPO paper's)."""
    epsilon_low: float = 0.2
    """Lower clip range of the importance ratio."""
    epsilon_high: float = 0.2
    """Upper clip range (DAPO raises it, e.g. 0.28)."""
    num_iterations: int = 1
    """μ: optimisation passes per rollout batch (1 = the paper; ratio is then exactly 1)."""
    importance_sampling_level: str = "token"
    """Importance ratio, an entry of ``rl.algos.POLICY_LOSSES``: ``token`` (GRPO, the paper) or
    ``sequence`` (GSPO: one length-normalised ratio per completion, clipped per sequence; TRL's
    ``importance_sampling_level="sequence"``)."""
    scale_rewards: str = "group"
    """Advantage estimator, an entry of ``rl.algos.ADVANTAGE_ESTIMATORS``: group (GRPO), batch, or none
    (Dr. GRPO)."""
    loss_agg: str = "seq-mean-token-mean"
    """Loss aggregation, an entry of ``rl.algos.LOSS_AGGREGATIONS``: seq-mean-token-mean (GRPO),
    token-mean (DAPO/BNPO), seq-mean-token-sum-norm (Dr. GRPO)."""
    drop_zero_std_groups: bool = False
    """Dynamic sampling: resample prompts whose G rewards are all equal (they carry no signal)."""
    max_resample_rounds: int = 2
    """Cap on resampling rounds when ``drop_zero_std_groups`` is on."""
    mask_truncated_completions: bool = False
    """Exclude completions that hit ``rollout.max_new_tokens`` from the loss."""
    router_aux_loss_coef: float = 0.0
    """Weight of the MoE load-balancing loss (Qwen3-Omni; ignored by dense families). Qwen3-Omni ships
    0.001 for pre-training; 0 (the default) adds none, as TRL and verl default for RL."""
    drop_unimodal_groups: bool = False
    """Counterfactual filtering (docs/grounding.md): scale the advantages of groups whose prompt the policy
    answers correctly with ``counterfactual_ablate`` removed by ``unimodal_group_weight``."""
    unimodal_threshold: float = 0.5
    """A group counts as unimodal when at least this fraction of its counterfactual answers is right."""
    unimodal_group_weight: float = 0.0
    """Advantage weight of a unimodal group (0 = dropped, 1 = kept)."""
    counterfactual_ablate: str = "audio"
    """The modality the grounding reward, the filter and the modality credit remove: audio (silence) or
    image (blank; a video's frames grey)."""
    counterfactual_samples: int = 4
    """M: answers sampled per prompt with the modality removed (one shared-prefix pass per prompt)."""
    credit_span: str = "think"
    """Modality credit (docs/grounding.md): the tokens whose log-prob gain from the modality is averaged,
    an entry of ``rl.credit.CREDIT_SPANS``: think (the ``<think>`` content), completion, or answer."""
    credit_clip: float = 1.0
    """Each completion's credit (nats per token) is clipped to [-credit_clip, credit_clip]; 0 = unclipped."""
    credit_weighting: str = "none"
    """Advantage weighting by the credit, an entry of ``rl.credit.ADVANTAGE_WEIGHTINGS``: none, or scale
    (A + credit_strength·|A|·(credit − group mean), never flipping A's sign)."""
    credit_strength: float = 1.0
    """The ``scale`` weighting's strength (per nat of credit)."""
    credit_placebo: bool = False
    """Control arm: each prompt's credit values go to another prompt's completions (same magnitudes,
    no information), for the reward and the weighting alike."""
    rollout_is_cap: float = 0.0
    """Truncated importance sampling (``rollout.engine: vllm``): each completion token's policy loss is
    weighted by min(π_trainer / π_vLLM, cap), the ratio of the trainer's log-prob (at the rollout's
    weights) to vLLM's for the sampled token, as verl's and TRL's TIS (``rl.algos.truncated_is_weights``);
    0 = off. Typical: 2."""

    def __post_init__(self) -> None:
        _check(bool(self.rewards), "algo.rewards", "needs at least one reward")
        _check(
            self.counterfactual_ablate in ("audio", "image"),
            "algo.counterfactual_ablate",
            f"must be audio or image, got {self.counterfactual_ablate!r}",
        )
        _check(self.counterfactual_samples >= 1, "algo.counterfactual_samples", "must be >= 1")
        _check(0 <= self.unimodal_threshold <= 1, "algo.unimodal_threshold", "must be in [0, 1]")
        _check(self.unimodal_group_weight >= 0, "algo.unimodal_group_weight", "must be >= 0")
        _check(self.credit_clip >= 0, "algo.credit_clip", "must be >= 0 (0: unclipped)")
        _check(self.credit_strength >= 0, "algo.credit_strength", "must be >= 0")
        _check(
            not self.credit_placebo or "modality_credit" in self.rewards or self.credit_weighting != "none",
            "algo.credit_placebo",
            "permutes the modality credit, which nothing uses: add rewards.modality_credit or a credit_weighting",
        )
        credit_w, accuracy_w = self.rewards.get("modality_credit", 0.0), self.rewards.get("accuracy", 0.0)
        spread = 2 * abs(credit_w) * self.credit_clip  # the most the credit can move two completions apart
        _check(
            not (spread and accuracy_w > 0 and spread >= accuracy_w),
            "algo.credit_clip",
            "2 × |rewards.modality_credit| × credit_clip must stay below rewards.accuracy, so a right answer "
            f"always out-earns a wrong one (got {credit_w:g} × {self.credit_clip:g} against {accuracy_w:g})",
        )
        _check(self.router_aux_loss_coef >= 0, "algo.router_aux_loss_coef", "must be >= 0")
        _check(self.beta >= 0, "algo.beta", "must be >= 0")
        _check(self.epsilon_low >= 0 and self.epsilon_high >= 0, "algo.epsilon_low/high", "must be >= 0")
        _check(self.num_iterations >= 1, "algo.num_iterations", "must be >= 1")
        _check(self.max_resample_rounds >= 0, "algo.max_resample_rounds", "must be >= 0")
        _check(
            self.rollout_is_cap == 0 or 1 <= self.rollout_is_cap <= 1e3,
            "algo.rollout_is_cap",
            "must be 0 (off) or in [1, 1000] (a cap below 1 shrinks every token's weight)",
        )


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    """Run directory: checkpoints/, metrics.jsonl, rollouts.jsonl, config.yaml."""
    seed: int = 0
    """Seeds python, numpy and torch; data order and sampling follow from it."""
    max_steps: int = 100
    """Optimiser steps (one step = one rollout batch of ``prompts_per_step`` x G completions)."""
    prompts_per_step: int = 8
    """B: prompts per step on each process."""
    mini_batch_prompts: int = 0
    """Prompts per backward pass inside a step (gradient accumulation); 0 = all at once."""
    completions_per_pass: int = 0
    """With gradient checkpointing: completions per checkpointed chunk of the policy pass (bounds the
    activation memory of the backward replay, whatever G is); 0 = all completions in one chunk."""
    lr: float = 1e-6
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warm-up steps before the cosine decay."""
    lr_schedule: str = "cosine"
    """cosine or constant."""
    max_grad_norm: float = 5.0
    """Gradient-norm clip."""
    mixed_precision: str = "no"
    """accelerate mixed precision: no, bf16 or fp16."""
    log_every: int = 1
    """Write metrics every N steps."""
    rollouts_every: int = 1
    """Write a sample of rollouts to rollouts.jsonl every N steps."""
    rollouts_per_log: int = 8
    """How many completions each rollouts.jsonl write keeps."""
    save_every: int = 50
    """Checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 2
    """How many checkpoints to keep on disk."""
    max_bad_steps: int = 5
    """Abort after this many consecutive non-finite losses or gradient norms."""
    threads: int = 0
    """torch intra-op threads on CPU; 0 keeps torch's default."""
    eval_every: int = 0
    """Validate on ``data.val_path`` every N steps (greedy; the training's prompt, budgets and length),
    logging ``eval/accuracy``, ``eval/format_rate``, ... in metrics.jsonl; 0 never validates."""
    keep_best: bool = False
    """Also save the policy with the best validation accuracy so far as ``best/`` (``best/step.txt``)."""
    report_to: list[str] = field(default_factory=list)
    """Trackers that also get every logged metric, through accelerate (names: ``rl.trackers.TRACKERS``)."""

    def __post_init__(self) -> None:
        for name in (
            "max_steps",
            "prompts_per_step",
            "log_every",
            "rollouts_every",
            "save_every",
            "keep_checkpoints",
            "max_bad_steps",
        ):
            _check(getattr(self, name) >= 1, f"train.{name}", "must be >= 1")
        _check(self.mini_batch_prompts >= 0, "train.mini_batch_prompts", "must be >= 0")
        _check(self.completions_per_pass >= 0, "train.completions_per_pass", "must be >= 0")
        _check(self.eval_every >= 0, "train.eval_every", "must be >= 0 (0: no validation)")
        # An AdamW step moves each weight by about lr: above 1 no run is meaningful, and far above
        # (1e39) torch itself fails on the float32 overflow.
        _check(0 < self.lr <= 1, "train.lr", "must be in (0, 1]")
        _check(
            self.lr_schedule in ("cosine", "constant"),
            "train.lr_schedule",
            f"unknown schedule {self.lr_schedule!r}",
        )
        _check(
            self.mixed_precision in ("no", "bf16", "fp16"),
            "train.mixed_precision",
            "must be no, bf16 or fp16",
        )
        _check(self.max_grad_norm > 0, "train.max_grad_norm", "must be > 0")
