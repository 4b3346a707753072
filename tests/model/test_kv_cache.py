"""The in-place decode cache holds exactly what transformers' DynamicCache would, and refuses to overflow."""

import pytest
import torch
from transformers.cache_utils import Cache, DynamicCache

from echoink.model.kv_cache import reserved_cache


def test_reserved_cache_matches_dynamic_cache():
    torch.manual_seed(0)
    prompt = [(torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)) for _ in range(2)]  # 2 layers, [B, h, S, d]
    dynamic, prefill = DynamicCache(), DynamicCache()
    for i, (k, v) in enumerate(prompt):
        dynamic.update(k, v, i)
        prefill.update(k, v, i)
    dynamic.batch_repeat_interleave(3)
    reserved = reserved_cache(prefill, repeats=3, reserve=4)
    for _ in range(4):
        for i in range(2):
            k, v = torch.randn(6, 3, 1, 4), torch.randn(6, 3, 1, 4)
            want, got = dynamic.update(k, v, i), reserved.update(k, v, i)
            assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    assert reserved.get_seq_length() == dynamic.get_seq_length() == 9
    with pytest.raises(RuntimeError, match="reserve exhausted"):
        reserved.update(torch.randn(6, 3, 1, 4), torch.randn(6, 3, 1, 4), 0)


def test_sliding_window_layers_are_only_expanded():
    from transformers.cache_utils import DynamicSlidingWindowLayer

    prefill = Cache(layers=[DynamicSlidingWindowLayer(sliding_window=4)])
    prefill.update(torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4), 0)
    cache = reserved_cache(prefill, repeats=3, reserve=8)
    assert type(cache.layers[0]) is DynamicSlidingWindowLayer
    assert cache.layers[0].keys.shape[0] == 6
