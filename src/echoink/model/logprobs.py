"""Per-token log-probabilities from logits: the one place the log-prob passes turn logits into the
[N, T] log-probs the loss reads. Pure tensor maths (imports only torch), kept in the model layer
because only the model layer's passes call it.

Shapes: N completions, T completion tokens, V vocabulary.
"""

from __future__ import annotations

import torch


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, chunk_tokens: int = 256
) -> torch.Tensor:
    """log softmax(logits / temperature) at ``targets``: logits [N, T, V], targets [N, T] -> [N, T] float32.

    Computed as ``x[target] - logsumexp(x)`` over tiles of about ``chunk_tokens`` positions, so the
    only float32 copy of the logits alive at a time is one [chunk_tokens, V] tile (a full log_softmax
    of a bf16 [N, T, V] would allocate twice the logits' size in float32). Sliced (non-contiguous)
    logits such as ``logits[:, P-1:-1]`` are read in place, never copied whole. Differentiable.

    >>> logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])  # N=1, T=2, V=2
    >>> token_logprobs(logits, torch.tensor([[0, 1]])).tolist()
    [[-0.6931..., -2.1269...]]
    """
    N, T, _ = logits.shape
    if N * T == 0:
        return torch.zeros(N, T, dtype=torch.float32, device=logits.device)
    # Tiles of rows x cols positions, cut from the [N, T, V] tensor itself: reshaping a sliced
    # (non-contiguous) logits tensor to [N·T, V] would copy all of it.
    rows, cols = max(1, chunk_tokens // T), min(T, max(1, chunk_tokens))
    out = []
    for n0 in range(0, N, rows):
        row_out = []
        for t0 in range(0, T, cols):
            x = logits[n0 : n0 + rows, t0 : t0 + cols].float()  # [rows, cols, V]; the only float32 copy
            if temperature != 1.0:
                x = x / temperature
            picked = x.gather(-1, targets[n0 : n0 + rows, t0 : t0 + cols, None]).squeeze(-1)
            row_out.append(picked - torch.logsumexp(x, dim=-1))
        out.append(torch.cat(row_out, dim=1))
    return torch.cat(out, dim=0)
