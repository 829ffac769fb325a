"""Batched top-k and beam search over a label tree, plus merging of ensemble members' top-k lists.

All functions work on torch tensors of one batch and never loop over labels in Python. Node ids are per level
(0..n_level-1); ``-1`` marks padding in id tensors, and padded entries score ``-inf`` in top-k outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

PAD_ID = -1


def topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` of a dense score matrix, padded to ``k`` columns.

    Args:
        scores: (batch, L) scores (any order-preserving scale).
        k: number of entries per row.

    Returns:
        (ids int64 (batch, k), scores float32 (batch, k)) sorted by decreasing score; columns beyond L are
        ``-1`` / ``-inf``.
    """
    kk = min(k, scores.shape[1])
    val, idx = torch.topk(scores.float(), kk, dim=1)
    return pad_columns(idx, val, k)


def pad_columns(idx: torch.Tensor, val: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (batch, k') id/score tensors to ``k`` columns with ``-1`` / ``-inf``."""
    if idx.shape[1] >= k:
        return idx, val
    b, extra = idx.shape[0], k - idx.shape[1]
    idx = torch.cat([idx, idx.new_full((b, extra), PAD_ID)], dim=1)
    val = torch.cat([val, val.new_full((b, extra), float("-inf"))], dim=1)
    return idx, val


def expand_children(nodes: torch.Tensor, children: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Children of each document's beam nodes.

    Args:
        nodes: (batch, B) int64 node ids of the upper level, ``-1`` for padding.
        children: (n_upper, max_children) int64 child ids in the lower level, ``-1`` padded.

    Returns:
        (candidates (batch, B*max_children) int64 with ``-1`` padding, parent_slot (batch, B*max_children)
        int64: the column of ``nodes`` each candidate descends from).
    """
    b, beam = nodes.shape
    max_c = children.shape[1]
    cand = children[nodes.clamp(min=0)]  # (batch, B, max_children)
    cand = cand.masked_fill((nodes < 0).unsqueeze(-1), PAD_ID)
    slot = torch.arange(beam, device=nodes.device).view(1, beam, 1).expand(b, beam, max_c)
    return cand.reshape(b, beam * max_c), slot.reshape(b, beam * max_c)


def beam_search(level_logits: Sequence[Callable[[torch.Tensor | None], torch.Tensor]],
                children: Sequence[torch.Tensor], beam: int, k: int,
                gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search down a probabilistic label tree; a node's score is the product of the sigmoid
    probabilities on its path from the top level (PLT, LightAttention Eq. 1). At the last level the path
    probability of the parent enters with exponent ``gamma``: ``p_label * p_parent ** gamma`` (1: the PLT
    product; 0: the label's own probability among the beam's candidates).

    Args:
        level_logits: one callable per level. ``level_logits[0](None)`` returns logits of every top-level node
            (batch, n_1); ``level_logits[i](candidates)`` returns logits (batch, c) of the level-(i+1) nodes
            ``candidates`` (batch, c) (ids ``>= 0``; padded slots hold a valid id whose result is ignored).
        children: ``children[i]`` (n_{i+1}, max_children) maps level-(i+1) nodes to level-(i+2) nodes, ``-1``
            padded (one tensor fewer than levels).
        beam: nodes kept per document at each inner level.
        k: results returned from the last level.
        gamma: exponent of the parent's path probability in the last level's scores.

    Returns:
        (ids int64 (batch, k), probabilities float32 (batch, k)) of last-level nodes, decreasing;
        ``-1``/``-inf`` padding when fewer than ``k`` candidates exist.
    """
    if len(children) != len(level_logits) - 1:
        raise ValueError(f"{len(level_logits)} levels need {len(level_logits) - 1} children maps, "
                         f"got {len(children)}")
    # log probabilities: sigmoid saturates at exactly 1.0 in float32 (logit > ~17), which would make ties whose
    # order depends on k; log-sigmoid keeps them apart, and the returned probabilities are exp() of the path sums
    logp = torch.nn.functional.logsigmoid(level_logits[0](None).float())  # (batch, n_1)
    if len(level_logits) == 1:
        return _to_probabilities(*topk(logp, k))
    nodes, node_lp = topk(logp, beam)  # (batch, B)
    for depth in range(1, len(level_logits)):
        cand, slot = expand_children(nodes, children[depth - 1])  # (batch, c)
        logits = level_logits[depth](cand.clamp(min=0)).float()  # (batch, c)
        parent_lp = torch.gather(node_lp, 1, slot).clamp(min=-1e30)  # (batch, c); padded parents: -inf
        last = depth == len(level_logits) - 1
        lp = torch.nn.functional.logsigmoid(logits) + (parent_lp if not last or gamma == 1.0 else parent_lp * gamma)
        lp = lp.masked_fill(cand < 0, float("-inf"))
        width = k if depth == len(level_logits) - 1 else beam
        kk = min(width, cand.shape[1])
        node_lp, pos = torch.topk(lp, kk, dim=1)  # (batch, kk)
        nodes = torch.gather(cand, 1, pos).masked_fill(torch.isinf(node_lp), PAD_ID)
        nodes, node_lp = pad_columns(nodes, node_lp, width)
    return _to_probabilities(nodes, node_lp)


def beam_search_grid(level_logits: Sequence[Callable[[torch.Tensor | None], torch.Tensor]],
                     children: Sequence[torch.Tensor], beams: Sequence[int], gammas: Sequence[float], k: int
                     ) -> dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]]:
    """:func:`beam_search` for every (beam, gamma) pair. For a two-level tree the networks run once in all:
    the top level's best ``b`` nodes are the first ``b`` of its best ``max(beams)``, so each narrower beam is a
    mask over the widest beam's leaf candidates. Deeper trees (where an inner beam changes the lower levels'
    candidates) get one beam search per pair. For choosing the decoding on a validation split
    (:meth:`xmtc.models.deep_decoding.TreeDecoding.choose_decoding`).

    Returns:
        {(beam, gamma): (ids int64 (batch, k), probabilities float32 (batch, k))}, each as
        ``beam_search(level_logits, children, beam, k, gamma)`` returns it (up to ties).
    """
    if len(children) != len(level_logits) - 1:
        raise ValueError(f"{len(level_logits)} levels need {len(level_logits) - 1} children maps, "
                         f"got {len(children)}")
    if len(level_logits) == 1:  # no tree: neither beam nor gamma changes anything
        ids, probs = beam_search(level_logits, children, max(beams), k)
        return {(b, g): (ids, probs) for b in beams for g in gammas}
    if len(level_logits) > 2:  # inner beams change the lower levels' candidates: one search per pair
        return {(b, g): beam_search(level_logits, children, b, k, gamma=g) for b in beams for g in gammas}
    logp = torch.nn.functional.logsigmoid(level_logits[0](None).float())  # (batch, n_1)
    nodes, node_lp = topk(logp, max(beams))  # (batch, B) decreasing
    cand, slot = expand_children(nodes, children[0])  # (batch, c)
    leaf_lp = torch.nn.functional.logsigmoid(level_logits[1](cand.clamp(min=0)).float())  # (batch, c)
    parent_lp = torch.gather(node_lp, 1, slot).clamp(min=-1e30)
    out = {}
    for b in beams:
        outside = (cand < 0) | (slot >= b)
        for g in gammas:
            lp = (leaf_lp + parent_lp * g).masked_fill(outside, float("-inf"))
            kk = min(k, cand.shape[1])
            val, pos = torch.topk(lp, kk, dim=1)
            ids = torch.gather(cand, 1, pos).masked_fill(torch.isinf(val), PAD_ID)
            out[(b, g)] = _to_probabilities(*pad_columns(ids, val, k))
    return out


def _to_probabilities(ids: torch.Tensor, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, exp(logp)) with padding (id -1) kept at -inf."""
    return ids, logp.exp().masked_fill(ids < 0, float("-inf"))


def merge_topk(members: Sequence[tuple[torch.Tensor, torch.Tensor]], k: int,
               weights: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the top-k lists of ensemble members (a label missing from a member's list counts as score 0).

    Args:
        members: (ids int64 (batch, k_m), scores (batch, k_m)) per member, ``-1``/``-inf`` padded.
        k: entries kept per row.
        weights: member weights (default: equal, summing to 1).

    Returns:
        (ids int64 (batch, k), scores float32 (batch, k)) sorted by decreasing averaged score.
    """
    if weights is None:
        weights = [1.0 / len(members)] * len(members)
    ids = torch.cat([m[0] for m in members], dim=1)  # (batch, total)
    val = torch.cat([m[1].float().clamp(min=0) * w for m, w in zip(members, weights, strict=True)], dim=1)
    b, total = ids.shape
    valid = ids >= 0
    n_ids = int(ids.max().item()) + 2 if valid.any() else 1
    # a key per (row, id); padding maps to the row's key 0 slot
    key = torch.arange(b, device=ids.device).unsqueeze(1) * n_ids + (ids + 1)  # (batch, total)
    uniq, inverse = torch.unique(key, return_inverse=True)  # (u,), (batch, total)
    summed = torch.zeros(uniq.shape[0], device=ids.device).scatter_add_(0, inverse.flatten(), val.flatten())
    out_ids = uniq % n_ids - 1  # (u,)
    row = uniq // n_ids
    summed = summed.masked_fill(out_ids < 0, float("-inf"))
    # dense (batch, total) view: each row's unique entries, padded with -inf
    counts = torch.bincount(row, minlength=b)
    start = torch.cumsum(counts, 0) - counts
    col = torch.arange(uniq.shape[0], device=ids.device) - start[row]
    dense_val = torch.full((b, total), float("-inf"), device=ids.device)
    dense_ids = torch.full((b, total), PAD_ID, dtype=torch.int64, device=ids.device)
    dense_val[row, col] = summed
    dense_ids[row, col] = out_ids
    kk = min(k, total)
    top_val, pos = torch.topk(dense_val, kk, dim=1)
    top_ids = torch.gather(dense_ids, 1, pos).masked_fill(torch.isinf(top_val), PAD_ID)
    return pad_columns(top_ids, top_val, k)


def merge_grids(grids: Sequence[dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]]], k: int
                ) -> dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]]:
    """Merge the :func:`beam_search_grid` results of ensemble members pair by pair (:func:`merge_topk`)."""
    if len(grids) == 1:
        return grids[0]
    return {p: merge_topk([grid[p] for grid in grids], k) for p in grids[0]}
