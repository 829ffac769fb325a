"""Decision rules: which of a model's ranked candidates (a :class:`~xmtc.models.base.TopK`) form the label set
of a document, and :func:`tune`, which chooses a rule and its parameters on validation predictions.

Rules (each a small frozen dataclass with ``to_dict`` / ``from_dict``, stored as ``decision.json`` in the model
folder, see :func:`xmtc.models.base.save_decision`):

* :class:`TopKRule` ``k``: the ``k`` best labels.
* :class:`ThresholdRule` ``threshold``: every candidate (of the top ``depth``) scoring at least ``threshold``.
* :class:`TopKThresholdRule` ``k, threshold``: at most ``k`` labels, each scoring at least ``threshold``
  (Annif's ``limit`` + ``threshold``).
* :class:`LabelThresholdRule`: a threshold per label, chosen for the labels with at least ``min_positives``
  validation documents; the others back off to the global ``threshold``; optional limit ``k``.

``at_least_one`` (threshold rules) keeps the best candidate of a document whose set would be empty.

A rule only compares a document's candidate scores with thresholds, so it needs scores on one scale across
documents (and, for an ensemble, across members): see "Scores and decision rules" in docs/MODELS.md.

Apply a rule with :func:`apply` (a list of label-id arrays), :func:`to_sets` (ids and scores,
:class:`LabelSets`) or ``model.predict_sets(texts)`` (the rule saved with the model).

This module is the public face of two: :mod:`xmtc.decision_rules` (the rule kinds, ``decision.json``, applying)
and :mod:`xmtc.decision_tuning` (:func:`tune`).
"""

from xmtc.decision_rules import (
    ALL_RULES,
    DECISION_FILE,
    DECISION_FORMAT,
    METRICS,
    NEVER,
    NO_RULE,
    RULES,
    CalibratedRule,
    LabelSets,
    LabelThresholdRule,
    Rule,
    ThresholdRule,
    TopKRule,
    TopKThresholdRule,
    apply,
    apply_csr,
    decision_payload,
    parse_decision,
    rule_from_dict,
    rule_scores,
    to_sets,
)
from xmtc.decision_tuning import Candidate, TuneResult, tune

__all__ = [
    "ALL_RULES", "DECISION_FILE", "DECISION_FORMAT", "METRICS", "NEVER", "NO_RULE", "RULES", "CalibratedRule",
    "Candidate", "LabelSets", "LabelThresholdRule", "Rule", "ThresholdRule", "TopKRule", "TopKThresholdRule",
    "TuneResult", "apply", "apply_csr", "decision_payload", "parse_decision", "rule_from_dict", "rule_scores",
    "to_sets", "tune",
]
