"""Beam width and leaf gamma of the label-tree models, chosen on validation: the :class:`TreeDecoding` mixin of
:class:`~xmtc.models.deep.DeepTextModel`, :data:`GAMMAS` and the checks of the decoding fields.

A tree model predicts by beam search and ranks a leaf by ``p_label * p_parent ** gamma``; with
``level_gamma=null`` or ``beam_choices`` the pair is chosen after training on the validation split, in one
prediction pass over every pair (``xmtc tune RUN --decoding`` does the same on a trained model).
:class:`TreeDecoding` reads the model's ``config``, ``device_``, ``networks_``, ``stats_`` and its text pipeline
(``eval_batches``, ``encode``, ``texts_of``, ``_grid_topk_batch``); it never imports :mod:`xmtc.models.deep`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from xmtc.config import check
from xmtc.data.split import Dataset
from xmtc.errors import XMTCError
from xmtc.models.base import TopK
from xmtc.models.deep_batches import Encoded
from xmtc.train import autocast

GAMMAS = [1.0, 0.5, 0.25, 0.0]  # leaf gammas tried on validation with level_gamma=null (label-tree models)


def check_decoding_fields(cfg: Any) -> None:
    """The checks of the tree models' prediction fields ``level_gamma`` and ``beam_choices``."""
    check(cfg.level_gamma is None or cfg.level_gamma >= 0,
          f"level_gamma must be >= 0 or null, but is {cfg.level_gamma}")
    check(isinstance(cfg.beam_choices, list) and all(isinstance(b, int) and not isinstance(b, bool) and b > 0
                                                     for b in cfg.beam_choices),
          f"beam_choices must be a list of positive integers (e.g. [12, 24]), but is {cfg.beam_choices!r}")


class TreeDecoding:
    """Validation-chosen beam width and leaf gamma of a label-tree model (a mixin: no state of its own)."""

    def choose_decoding(self, valid: Encoded, grid_fn: Callable[..., dict[tuple[int, float],
                        tuple[torch.Tensor, torch.Tensor]]], beams: Sequence[int], gammas: Sequence[float]
                        ) -> tuple[int, float, dict[str, float]]:
        """The beam width and leaf gamma whose top-k scores best on ``valid`` by ``cfg.select_metric``, from one
        prediction pass: ``grid_fn(batch, k, beams, gammas)`` returns every pair's top-k of the batch (e.g.
        :func:`xmtc.predict.beam_search_grid`). Ties go to the narrower beam, then the larger gamma (cheaper,
        and closer to the PLT product).

        Returns:
            (beam, gamma, {"beam=B gamma=G": validation score}).
        """
        from xmtc import metrics

        name, k = self.config.select_metric.split("@")
        k = int(k)
        beams, gammas = sorted(set(beams)), sorted(set(gammas), reverse=True)
        pairs = [(b, g) for b in beams for g in gammas]
        tops = {p: (np.full((len(valid), k), -1, dtype=np.int32), np.full((len(valid), k), -np.inf, np.float32))
                for p in pairs}
        with torch.no_grad(), autocast(self.device_, self.config.bf16):
            for batch in self.eval_batches(valid):
                for p, (idx, val) in grid_fn(batch, k, beams, gammas).items():
                    kk = min(k, idx.shape[1])
                    tops[p][0][batch.rows, :kk] = idx[:, :kk].cpu().numpy()
                    tops[p][1][batch.rows, :kk] = val[:, :kk].float().cpu().numpy()
        fn = metrics.precision_at_k if name == "P" else metrics.ndcg_at_k
        scores = {p: float(fn(valid.Y, TopK(*tops[p], n_labels=valid.Y.shape[1]), k)) for p in pairs}
        best = pairs[0]
        for p in pairs[1:]:
            if scores[p] > scores[best] + 1e-12:
                best = p
        return best[0], best[1], {f"beam={b} gamma={g}": s for (b, g), s in scores.items()}

    def choose_beam_gamma(self, valid: Encoded, beams: Sequence[int], gammas: Sequence[float]) -> None:
        """Set the prediction's beam width (``beam_``) and leaf gamma (``gamma_``) to the pair that scores best on
        ``valid`` (one prediction pass of the subclass's ``_grid_topk_batch``, :meth:`choose_decoding`); the
        validation scores go to ``stats_``."""
        self.beam_, self.gamma_, scores = self.choose_decoding(valid, self._grid_topk_batch, beams, gammas)
        self.stats_.update(level_gamma=self.gamma_, beam=self.beam_, decoding_validation=scores)

    def choose_decoding_if_asked(self, valid: Encoded, beam: int) -> None:
        """After training: choose the beam among ``[beam, *cfg.beam_choices]`` and gamma among :data:`GAMMAS`
        (``cfg.level_gamma=None``) on ``valid``, when the config asks for either."""
        cfg = self.config
        if cfg.level_gamma is None or cfg.beam_choices:
            self.choose_beam_gamma(valid, [beam, *cfg.beam_choices],
                                   GAMMAS if cfg.level_gamma is None else [cfg.level_gamma])

    def has_tree_decoding(self) -> bool:
        """Whether prediction searches a label tree, so that a beam width and a leaf gamma can be chosen
        (:meth:`tune_decoding`); models with a tree override this."""
        return False

    def tune_decoding(self, valid: Dataset, beams: Sequence[int], gammas: Sequence[float] | None = None
                      ) -> dict[str, float]:
        """Choose the prediction's beam width and leaf gamma on ``valid`` after training, as ``level_gamma=null``
        and ``beam_choices`` do at the end of a fit (``xmtc tune RUN --decoding``); save the model to keep them.

        Args:
            valid: validation documents with labels (never the test split).
            beams: beam widths to try.
            gammas: leaf gammas to try (default: :data:`GAMMAS`).

        Returns:
            {"beam=B gamma=G": validation score by ``config.select_metric``} (also in ``stats_``).
        """
        if not self.has_tree_decoding():
            raise XMTCError(f"this {self.name} model predicts without a label tree (flat): it has no beam width "
                            "or leaf gamma to tune")
        if not beams or any(int(b) < 1 for b in beams):
            raise XMTCError(f"beam widths must be positive integers, got {list(beams)}")
        if self.device_ is None:
            self._setup_runtime()
        for net in self.networks_.values():
            net.eval()
        self.choose_beam_gamma(self.encode(self.texts_of(valid), valid.Y), [int(b) for b in beams],
                               GAMMAS if gammas is None else gammas)
        return self.stats_["decoding_validation"]
