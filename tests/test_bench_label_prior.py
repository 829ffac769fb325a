"""benchmarks/label_prior.py: the re-ranking of a model's top labels by a label prior."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.label_prior import rerank  # noqa: E402


def test_rerank_by_a_label_prior():
    idx = np.array([[0, 1, 2, -1], [2, 0, -1, -1]])
    scores = np.array([[0.9, 0.5, 0.4, 0.0], [0.8, 0.7, 0.0, 0.0]])
    log_w = -np.log(np.array([100.0, 10.0, 1.0]) + 1)  # label 0 frequent, label 2 rare
    np.testing.assert_array_equal(rerank(idx, scores, log_w, 0.0), idx)  # tau 0: the model's own order
    # a strong prior puts the rare label first; padding (-1) always stays last
    np.testing.assert_array_equal(rerank(idx, scores, log_w, 1.0), [[2, 1, 0, -1], [2, 0, -1, -1]])
    # a weak one only reorders near-ties: 0.5 vs 0.4 flips (log 1.25 < 0.2 * log(11 / 2)), 0.9 stays first
    np.testing.assert_array_equal(rerank(idx, scores, log_w, 0.2)[0], [0, 2, 1, -1])
