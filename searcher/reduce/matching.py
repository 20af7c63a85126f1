"""Shared matching pieces: ToMe's bipartite split, cosine scores, CLS attention row.

The ToMe split (Bolya et al., ICLR'23, sec. 3) alternates the *whole* sequence into sets A (even indices) and
B (odd indices). Protected prefix tokens stay where they are in that alternation but can neither be a source
(their A rows are ``-inf``) nor a destination (their B columns are ``-inf``) — for CLS (A[0]) and DeiT's
distillation token (B[0]) this is exactly the official code. The output order is ``[prefix, unmerged A, B]``,
as in the official code: with prefix tokens the unmerged A tokens are in their original order, without (a model
with no class token) in descending order of their best match, as the official code leaves them (it sorts only
``if class_token``), which sets the split of the next block.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from .merge import Plan

__all__ = [
    "full_precision",
    "normalize",
    "bipartite_scores",
    "bipartite_plan",
    "cls_attention",
    "split_sizes",
]

logger = logging.getLogger(__name__)


def full_precision(t: Tensor) -> Tensor:
    """``t`` in float32 when it is half precision (fp16/bf16); float32/float64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def normalize(metric: Tensor) -> Tensor:
    """L2-normalise the last dimension (ToMe divides by the norm; no epsilon, as in the official code)."""
    return metric / metric.norm(dim=-1, keepdim=True)


def split_sizes(n_tokens: int, num_prefix: int) -> tuple[int, int, int, int]:
    """(|A|, |B|, protected rows of A, protected columns of B) of the alternating split."""
    return (n_tokens + 1) // 2, n_tokens // 2, (num_prefix + 1) // 2, num_prefix // 2


def bipartite_scores(metric: Tensor, num_prefix: int) -> Tensor:
    """Cosine similarity of A = even tokens to B = odd tokens; metric (B, N, d) → (B, |A|, |B|).

    Rows of protected A tokens and columns of protected B tokens are ``-inf``.
    """
    m = normalize(full_precision(metric))  # fp16/bf16 activations → float32 scores
    scores = m[:, ::2] @ m[:, 1::2].transpose(-1, -2)  # (B, Na, Nb)
    _, _, pa, pb = split_sizes(metric.shape[1], num_prefix)
    if pa:
        scores[:, :pa, :] = -math.inf
    if pb:
        scores[:, :, :pb] = -math.inf
    return scores


def bipartite_plan(
    rank: Tensor, node_idx: Tensor | None, r: int, n_tokens: int, num_prefix: int, mode: str = "wavg"
) -> Plan:
    """The plan of a ToMe-style step: the ``r`` A tokens with the highest ``rank`` (B, |A|) leave A.

    With ``node_idx`` (B, |A|) (each A token's best B token) they merge into it (``mode``); without it they
    are dropped. Protected rows must rank ``-inf``. Output order: ``[prefix, unmerged A, B]``, the unmerged A
    tokens in their original order when there is a prefix, else by descending ``rank`` (both as the official ToMe).
    """
    batch = rank.shape[0]
    na, nb, pa, pb = split_sizes(n_tokens, num_prefix)
    edge_idx = rank.argsort(dim=-1, descending=True)  # (B, Na)
    unm_idx = edge_idx[:, r:]  # (B, Na - r)
    if num_prefix:  # the protected rows rank last: sorted, they come first and are dropped
        unm_idx = unm_idx.sort(dim=-1).values[:, pa:]  # (B, Na - r - pa) unprotected, in original order
    src_idx = edge_idx[:, :r]  # (B, r)
    dev = rank.device
    prefix = torch.arange(num_prefix, device=dev).expand(batch, -1)
    b_rest = (2 * torch.arange(pb, nb, device=dev) + 1).expand(batch, -1)
    keep = torch.cat([prefix, 2 * unm_idx, b_rest], dim=1)  # (B, N - r)
    if node_idx is None:
        return Plan(keep=keep)
    dst_b = node_idx.gather(1, src_idx)  # (B, r) index into B
    dst = num_prefix + (na - pa - r) + (dst_b - pb)  # output slot of that B token
    return Plan(keep=keep, src=2 * src_idx, dst=dst, mode=mode)


def cls_attention(q_cls: Tensor, keys: Tensor, scale: float, bias: Tensor | None = None) -> Tensor:
    """CLS attention row averaged over heads, ``mean_h softmax(q_cls kᵀ · scale + log s)``, in O(N·d).

    q_cls (B, H, d), keys (B, H, N, d), bias (B, 1, 1, N) additive logits or None → (B, N) float32.
    Never materialises the N×N attention map, so fused attention keeps running for the block itself.
    """
    logits = torch.einsum("bhd,bhnd->bhn", full_precision(q_cls), full_precision(keys)) * scale  # (B, H, N)
    if bias is not None:
        logits = logits + bias[:, 0].to(logits.dtype)  # (B, 1, N)
    return logits.softmax(dim=-1).mean(dim=1)
