"""A decode-time KV cache that grows in place: the G-fold expanded prompt cache plus room reserved for
the completion, so each decode step writes one column instead of copying the whole cache.

transformers' ``DynamicLayer`` appends with ``torch.cat``, which copies every cached key and value on
every step: for G rows over a 500-token audio+image prompt that was ~8% of a tiny-model GRPO step on
a CPU (``bench/profile_step.py``). ``StaticCache`` avoids the copy but always attends over its full
length behind a mask. This layer keeps DynamicLayer's behaviour (keys/values are exactly the tokens
seen so far, so masks and ``get_seq_length`` are unchanged) and only changes where they live: views
into one buffer [N, heads, prompt + reserve, head_dim]. Made for the rollout's decode loop: crop,
reorder and batch selection (beam search, assisted decoding) are not supported.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class ReservedLayer(DynamicLayer):
    def __init__(self, keys: torch.Tensor, values: torch.Tensor, repeats: int, reserve: int) -> None:
        super().__init__()
        n, heads, length, dim = keys.shape
        self._keys = keys.new_empty(n * repeats, heads, length + reserve, dim)  # [N, h, S + reserve, d]
        self._values = values.new_empty(n * repeats, heads, length + reserve, values.shape[-1])
        # Row b·repeats + r holds prompt b: write each prompt into its G rows in one broadcast copy.
        self._keys.view(n, repeats, heads, -1, dim)[:, :, :, :length] = keys[:, None]
        self._values.view(n, repeats, heads, -1, values.shape[-1])[:, :, :, :length] = values[:, None]
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._set_length(length)

    def _set_length(self, length: int) -> None:
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        start, new = self.keys.shape[-2], key_states.shape[-2]
        if start + new > self._keys.shape[-2]:
            raise RuntimeError(f"KV cache reserve exhausted: {start} + {new} > {self._keys.shape[-2]} tokens")
        self._keys[:, :, start : start + new] = key_states
        self._values[:, :, start : start + new] = value_states
        self._set_length(start + new)
        return self.keys, self.values


def reserved_cache(prefill: DynamicCache, repeats: int, reserve: int) -> Cache:
    """The prefill's cache [B, ...] repeated to [B·repeats, ...], with room for ``reserve`` more tokens.

    Layers of another kind (a sliding window, for a config with ``use_sliding_window``) keep their own
    update rule: the cache is then only expanded, as ``DynamicCache.batch_repeat_interleave`` does.
    """
    if any(type(lay) is not DynamicLayer for lay in prefill.layers):
        prefill.batch_repeat_interleave(repeats)
        return prefill
    return Cache(layers=[ReservedLayer(lay.keys, lay.values, repeats, reserve) for lay in prefill.layers])
