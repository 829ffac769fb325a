"""Score fusion of a network with a simpler ranker it builds on (a parabel shortlist for MAACF+, the teacher's
neighbour votes for TReaderXML): rank by ``logit + w * log p``, with the weight ``w`` chosen on the validation
split after training, so that a network that learned little cannot fall below the ranker it started from.

``w = 0`` is the network alone, ``w = inf`` the ranker's own order; the models keep the chosen weight
(``fusion_weight_``) and its validation table (``stats_``), and ``benchmarks.run`` reports both ends next to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from xmtc.config import check

__all__ = ["choose_weight", "check_fusion", "fixed_weight", "fuse_scores", "weight_json"]


def fuse_scores(logits: torch.Tensor, logp: torch.Tensor | None,
                weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(ranking key, reported score), both (batch, c).

    ``weight`` 0 (or no ranker scores): the network alone, key = logit, score = sigmoid(logit); inf: the
    ranker's own order, key = log p, score = p; else key = logit + weight * log p and score = sigmoid(key).
    """
    if logp is None or weight == 0:
        return logits, torch.sigmoid(logits)
    if math.isinf(weight):
        return logp, logp.exp()
    key = logits + weight * logp
    return key, torch.sigmoid(key)


def weight_json(w: float) -> float | str:
    """A fusion weight for JSON: inf as the string 'inf' (``float('inf')`` reads it back)."""
    return "inf" if math.isinf(w) else float(w)


def check_fusion(name: str, value: str | float, named: tuple[str, ...], grid: list[float]) -> None:
    """Config check of a fusion field (a weight >= 0 or one of ``named``) and of its grid."""
    if isinstance(value, str):
        check(value in named, f"{name} must be a number >= 0 or one of {named}, but is {value!r}")
    else:
        check(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and value >= 0, f"{name} must be a number >= 0 or one of {named}, but is {value!r}")
    check(len(grid) > 0 and all(math.isfinite(w) and w >= 0 for w in grid),
          f"{name}_grid must be finite weights >= 0, but is {grid}")


def fixed_weight(value: str | float, inf_name: str) -> float | None:
    """The weight a fusion field fixes: 0 for 'none', inf for ``inf_name``, None for 'auto'."""
    if isinstance(value, str):
        return {"auto": None, "none": 0.0, inf_name: math.inf}[value]
    return float(value)


def choose_weight(grid: Iterable[float],
                  score: Callable[[float], tuple[float, ...]]) -> tuple[float, dict[str, list[float]]]:
    """The weight with the best validation ``score(w)`` (a tuple: the selection metric first, tie-breakers
    after; ties go to the larger w) among ``grid`` and inf.

    Returns:
        (w, {str(w): the score tuple in percent}).
    """
    table, best = {}, None
    for w in sorted({float(x) for x in grid}) + [math.inf]:
        s = tuple(float(v) for v in score(w))
        table[str(weight_json(w))] = [round(100 * v, 4) for v in s]
        if best is None or (s, w) > best:
            best = (s, w)
    return best[1], table
