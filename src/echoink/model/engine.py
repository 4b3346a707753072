"""The engine: the one interface through which ``rl/``, ``sft.py`` and ``eval/`` use a thinker.

    engine = Engine.for_model(model, processor)        # the family from config.json's model_type
    prompts = engine.encode(messages)                   # processor -> ids + MMInputs (+ owners)
    done = engine.sample(policy, prompts, G, config)    # shared prefix: towers + prefill once per prompt
    logp = engine.logprobs(policy, prompts, done.ids, G, sharing="prefix")   # [N, T]

Why ``encode`` stops at the processor (and not at a prefilled cache): the rollout's prefill runs
without grad and the policy's log-prob pass needs its own with grad, so no prefix state can serve
both; each pass runs the towers and the prompt once per prompt instead (counted in the tests).
The placeholder/marker tokens that a model must never generate come from the family.

Shapes: B prompts, G completions per prompt, N = B·G, L prompt tokens, T completion tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig, ProcessorMixin

from ..data.media import Geometry
from ..errors import UserError
from .decode import Completions
from .families import FAMILIES, Family, family_for
from .mm import MMInputs, PromptBatch
from .passes import Scores, completion_logprobs
from .samplers import DecoderSampler, Sampler, VllmRollouts
from .vllm_sampler import VllmSampler, VllmSettings
from .wrappers import Holder, thinker_of

STOP_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
"""Generation ends at the first of these (both Omni families' generation configs stop at both)."""


@dataclass
class _Media:
    """A batch's media in placeholder order, and which prompt owns each item."""

    images: list = field(default_factory=list)
    audios: list = field(default_factory=list)  # standalone clips and video soundtracks, in text order
    audio_video: list = field(default_factory=list)  # per audio slot: None, or the index of its video
    videos: list = field(default_factory=list)
    fps: list = field(default_factory=list)
    owners: dict = field(default_factory=lambda: {"audio": [], "image": [], "video": []})

    def add(self, b: int, block: dict[str, Any]) -> None:
        kind = block.get("type")
        if kind == "image":
            self.images.append(block["image"])
            self.owners["image"].append(b)
        elif kind == "audio":
            self.audios.append(block["audio"])
            self.audio_video.append(None)
            self.owners["audio"].append(b)
        elif kind == "video":
            self.videos.append(block["video"])
            self.fps.append(float(block.get("fps", 2.0)))
            self.owners["video"].append(b)
            if block.get("soundtrack") is not None:
                self.audios.append(block["soundtrack"])
                self.audio_video.append(len(self.videos) - 1)
                self.owners["audio"].append(b)

    @property
    def video_sound(self) -> list[bool]:
        """Per video: its soundtrack is interleaved with its frames (else the video is frames only)."""
        with_sound = {i for i in self.audio_video if i is not None}
        return [i in with_sound for i in range(len(self.videos))]


def _collect_media(batch_messages: list[list[dict[str, Any]]]) -> _Media:
    media = _Media()
    for b, messages in enumerate(batch_messages):
        for message in messages:
            if not isinstance(message["content"], str):
                for block in message["content"]:
                    media.add(b, block)
    if len(set(media.fps)) > 1:
        raise UserError(f"videos of one batch must share a frame rate, got {sorted(set(media.fps))}")
    return media


class Engine:
    """A processor and a family: everything model-specific the training and evaluation code needs."""

    def __init__(self, processor: ProcessorMixin, family: Family | str, every_tower: bool = False) -> None:
        self.processor = processor
        self.family = FAMILIES.get(family) if isinstance(family, str) else family
        self.every_tower = every_tower
        """Log-prob passes call every tower whatever the batch holds (``Family.prefix``): set by a
        launch of several processes, whose passes must make the same collective calls."""
        self.sampler: Sampler = DecoderSampler(self.family)
        """Who draws completions (``samplers``): our decoder until ``use_vllm`` chooses vLLM, once."""

    def use_vllm(
        self,
        model_dir: str,
        dtype: str,
        settings: VllmSettings = VllmSettings(),
        initial: nn.Module | None = None,
    ) -> VllmSampler:
        """Sample (rollouts, validation, eval) on a colocated vLLM engine from now on (``rollout.engine: vllm``).

        It starts with ``initial``'s weights (eval), or dummy ones until :meth:`push_weights` (training)."""
        thinker = None if initial is None else thinker_of(initial)
        vllm = VllmSampler(model_dir, self.family, self.processor, dtype, settings, thinker)
        self.sampler = VllmRollouts(vllm, self.pad_id)
        return vllm

    def close(self) -> None:
        """Shut the sampler down; sampling returns to our own decoder."""
        self.sampler.close()
        self.sampler = DecoderSampler(self.family)

    @classmethod
    def for_model(cls, model: nn.Module, processor: ProcessorMixin) -> Engine:
        return cls(processor, family_for(thinker_of(model).config))

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def geometry(self) -> Geometry:
        """The family's media geometry read from this processor: pass it to the data layer's loaders
        (``sample_messages(..., geometry=engine.geometry)``) so images and frames are resized once."""
        return self.family.geometry(self.processor)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    # --- text <-> tokens ----------------------------------------------------------------------------
    def encode(
        self, batch_messages: list[list[dict[str, Any]]], add_generation_prompt: bool = True
    ) -> PromptBatch:
        """Render each conversation with the chat template and run the processor over the batch (left padded).

        Messages are the data layer's: content blocks carrying a PIL image / a 16 kHz float32 waveform.
        """
        proc = self.processor
        texts = [self.render(m, add_generation_prompt) for m in batch_messages]
        media = _collect_media(batch_messages)
        in_video = any(media.video_sound)
        kwargs = self.family.processor_kwargs(proc, media.audios)
        if media.videos:
            kwargs |= self.family.video_kwargs(proc, media.fps[0], media.audio_video if in_video else None)
        out = proc(
            text=texts,
            images=media.images or None,
            videos=media.videos or None,
            audio=media.audios or None,
            padding=True,
            padding_side="left",
            return_tensors="pt",
            **kwargs,
        )
        owners = {k: torch.tensor(v, dtype=torch.long) for k, v in media.owners.items()}
        mm = MMInputs.from_processor(out, owners, media.video_sound)
        sources = [(text, _collect_media([m])) for text, m in zip(texts, batch_messages, strict=True)]
        return PromptBatch(out["input_ids"], out["attention_mask"], mm, sources)

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        """One conversation as the chat template writes it (one placeholder per medium, before expansion)."""
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def token_counts(self, prompts: PromptBatch) -> dict[str, int]:
        """Tokens of the batch's prompts: the placeholders each medium expanded to, and all of them.

        {"image": n, "audio": n, "video": n, "prompt": n}, padding excluded.
        """
        ids = prompts.input_ids[prompts.attention_mask.bool()]
        proc, tok = self.processor, self.tokenizer
        counts = {
            kind: int((ids == tok.convert_tokens_to_ids(getattr(proc, f"{kind}_token"))).sum())
            for kind in ("image", "audio", "video")
        }
        return counts | {"prompt": int(ids.numel())}

    def decode(self, ids: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(ids, skip_special_tokens=True)

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def stop_token_ids(self) -> list[int]:
        return [self.tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]

    def suppressed_token_ids(self, vocab_size: int | None = None) -> list[int]:
        """Ids generation must never produce: media placeholders/markers, and the model's rows past the tokenizer.

        ``vocab_size`` (the model's embedding rows, often larger than the tokenizer) adds the unused ids.
        """
        tok = self.tokenizer
        ids = [tok.convert_tokens_to_ids(t) for t in self.family.placeholder_tokens]
        ids = [i for i in ids if i is not None and i != tok.unk_token_id]
        if vocab_size is not None:
            ids += range(len(tok), vocab_size)
        return sorted(set(ids))

    def generation_config(self, vocab_size: int | None = None, **sampling: Any) -> GenerationConfig:
        """Stops at <|im_end|>/<|endoftext|>, pads with the pad id, suppresses placeholders; ``sampling`` as in HF.

        >>> from echoink.testing import train_tokenizer
        >>> cfg = Engine(train_tokenizer(300), "qwen2.5-omni").generation_config(max_new_tokens=8, do_sample=False)
        >>> cfg.max_new_tokens, len(cfg.suppress_tokens), len(cfg.eos_token_id)
        (8, 9, 2)
        """
        if sampling.get("do_sample") and "top_k" not in sampling:
            sampling["top_k"] = (
                0  # transformers' default is 50; "off" unless asked, so samples match the scored policy
            )
        return GenerationConfig(
            eos_token_id=self.stop_token_ids(),
            pad_token_id=self.pad_id,
            suppress_tokens=self.suppressed_token_ids(vocab_size),
            **sampling,
        )

    # --- the model -----------------------------------------------------------------------------------
    @staticmethod
    def vocab_size(model: nn.Module) -> int:
        """The model's output rows (also under ZeRO-3, whose weights are empty placeholders: ds_shape)."""
        weight = thinker_of(model).get_output_embeddings().weight
        return int(getattr(weight, "ds_shape", weight.shape)[0])

    def sample(
        self,
        model: nn.Module,
        prompts: PromptBatch,
        group_size: int,
        config: GenerationConfig,
        shared: bool = True,
    ) -> Completions:
        """G completions per prompt from the sampler (``samplers``); ``shared``: our decoder runs the
        towers and prefill once per prompt, else the anchors' repeat (vLLM shares the prefix itself)."""
        return self.sampler.sample(model, prompts, group_size, config, shared)

    def logprobs(
        self,
        model: nn.Module,
        prompts: PromptBatch,
        completion_ids: torch.Tensor,
        group_size: int,
        temperature: float = 1.0,
        sharing: str = "prefix",
    ) -> torch.Tensor:
        """[N, T] log π(completion token | prompt, earlier tokens); see ``passes.completion_logprobs``."""
        thinker = thinker_of(model)
        return completion_logprobs(
            self.family, thinker, prompts, completion_ids, group_size, temperature, sharing,
            every_tower=self.every_tower,
        )  # fmt: skip

    @torch.no_grad()
    def generate(self, model: nn.Module, prompts: PromptBatch, **sampling: Any) -> torch.Tensor:
        """Completion ids [B * num_return_sequences, T] through transformers' ``generate`` (prompt stripped).

        ``sampling``: max_new_tokens, do_sample, temperature, top_p, top_k, num_return_sequences, ...
        """
        n = sampling.pop("num_return_sequences", 1)
        cfg = self.generation_config(self.vocab_size(model), **sampling)
        return self.sampler.generate(model, prompts, n, cfg)

    def scorer(
        self,
        model: nn.Module,
        sharing: str = "prefix",
        aux_loss_coef: float = 0.0,
        completions_per_pass: int = 0,
    ) -> CompletionScorer:
        """The policy's log-prob pass as a module (see ``CompletionScorer``)."""
        return CompletionScorer(model, self, sharing, aux_loss_coef, completions_per_pass)


class CompletionScorer(Holder):
    """The policy's log-prob pass as one ``forward``, so accelerate/DDP/DeepSpeed can wrap it.

    DDP only synchronises gradients of computations that go through the wrapped module's forward;
    calling the thinker's towers and language model directly from the trainer would bypass it.
    ``forward`` returns ([N, T] log-probs, the MoE load-balancing loss or None): the loss only when
    ``aux_loss_coef`` > 0 and the family is a mixture of experts (router logits of every
    language-model call of the pass, the prompt's and the completions').
    """

    def __init__(
        self,
        model: nn.Module,
        engine: Engine,
        sharing: str = "prefix",
        aux_loss_coef: float = 0.0,
        completions_per_pass: int = 0,
    ):
        super().__init__()
        self.model = model
        self.engine = engine
        self.sharing = sharing
        self.aux_loss_coef = aux_loss_coef
        self.completions_per_pass = completions_per_pass

    def forward(self, prompts: PromptBatch, completion_ids, group_size: int, temperature: float = 1.0):
        family = self.engine.family
        scores = Scores(self.aux_loss_coef > 0 and family.is_moe)
        thinker = thinker_of(self.model)
        logp = completion_logprobs(
            family, thinker, prompts, completion_ids, group_size, temperature, self.sharing, scores,
            self.completions_per_pass, self.engine.every_tower,
        )  # fmt: skip
        aux = family.aux_loss(scores.router_logits, thinker, None) if scores.router_logits else None
        return logp, aux
