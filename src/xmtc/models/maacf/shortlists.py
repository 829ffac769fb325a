"""MAACF+'s parabel shortlists (see :mod:`xmtc.models.maacf.model`): the Parabel that shortlists the labels at
prediction, the cross-fitted shortlists of the training documents, and both kept in the run directory so that
a resumed run goes on with the shortlists it was trained with (omikuji cannot be seeded).

:class:`MAACFShortlists` is a mixin of :class:`~xmtc.models.maacf.model.MAACF` (it reads the model's
``config``, ``label_index_`` and ``shortlister_``); it never imports the model module.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmtc.data.split import Dataset
from xmtc.errors import XMTCError
from xmtc.models.base import SAVING_MARKER, load_model
from xmtc.models.deep_batches import Encoded
from xmtc.models.maacf.label_groups import shortlist_recall
from xmtc.models.maacf.ranking import _candidates

log = logging.getLogger(__name__)


class MAACFShortlists:
    """Parabel shortlists of :class:`~xmtc.models.maacf.model.MAACF` (a mixin: no state of its own)."""

    def _new_shortlister(self):
        """An unfitted Parabel (default config; omikuji threads = ``threads``, 0 = all cores)."""
        from xmtc.models.baselines.parabel import ParabelModel

        return ParabelModel(ParabelModel.Config(n_threads=self.config.threads))

    def _fit_shortlister(self, texts: Sequence[str], Y: sp.csr_matrix):
        """A Parabel trained on ``texts`` with labels ``Y`` (CSR (n, L) in this model's label space)."""
        data = Dataset(Y=sp.csr_matrix(Y), label_index=self.label_index_, texts=list(texts), split="train")
        return self._new_shortlister().fit(data)

    def _kept_shortlister(self, folder: Path | None, resume: bool, train: Encoded):
        """The Parabel of the shortlist, kept in the run directory's ``folder/parabel``.

        omikuji cannot be seeded, so a resumed network must go on with the shortlist it was trained with: with
        ``resume`` and a complete saved copy, that copy is loaded instead of fitting a new one.
        """

        path = folder / "parabel" if folder is not None else None
        if path is not None and resume and (path / "meta.json").exists() and not (path / SAVING_MARKER).exists():
            log.info("resume: the parabel shortlist of %s", path)
            return load_model(path)
        model = self._fit_shortlister(train.texts, train.Y)
        if path is not None:
            model.save(path)
        return model

    def _kept_training_shortlist(self, folder: Path | None, resume: bool, train: Encoded) -> dict[str, Any]:
        """:meth:`_training_shortlist`, kept in the run directory's ``folder/train_shortlist.npz`` and, with
        ``resume``, loaded from there (the same reason as :meth:`_kept_shortlister`)."""
        path = folder / "train_shortlist.npz" if folder is not None else None
        if path is not None and resume and path.exists():
            with np.load(path) as z:
                got = {"cand": z["cand"], "folds": int(z["folds"]), "recall": float(z["recall"]),
                       "logp": z["logp"] if "logp" in z.files else None}  # None: kept before session 22
            if got["cand"].shape != (len(train), self.config.shortlist_size):
                raise XMTCError(f"{path}: training shortlists of shape {got['cand'].shape}, but this run has "
                                f"{len(train)} training documents and shortlist_size={self.config.shortlist_size}"
                                f"; resume needs the same training data and settings (or a new --run-dir)")
            log.info("resume: the training shortlists of %s", path)
            return got
        got = self._training_shortlist(train)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".partial.npz")
            np.savez(tmp, cand=got["cand"], logp=got["logp"], folds=got["folds"], recall=got["recall"])
            os.replace(tmp, path)  # whole or absent: a run killed while writing refits on resume
        return got

    def _training_shortlist(self, train: Encoded) -> dict[str, Any]:
        """The parabel shortlist of every training document, for the hard negatives.

        Cross-fitted with ``shortlist_folds`` k > 1: the documents are split into k seeded folds and the
        shortlist of a document comes from a Parabel trained on the other k - 1 folds, so the hard negatives are
        the labels Parabel confuses on documents it has not seen (in-sample it ranks the gold labels first: its
        training recall is far above the held-out one). k = 1: the final Parabel's in-sample predictions. The
        Parabel used at prediction (``shortlister_``) is always the one trained on all training documents.

        Returns:
            {"cand": int64 (n, c) label ids with -1 padding, "logp": float32 (n, c) their log-scores (-inf at
            padding), "folds": k, "recall": recall of the training labels in percent}.
        """
        cfg = self.config
        size, n = cfg.shortlist_size, len(train)
        folds = min(cfg.shortlist_folds, n)
        if folds <= 1:
            cand, logp = _candidates(self.shortlister_.predict(train.texts, k=size))
        else:
            fold = np.random.default_rng(cfg.seed).permutation(n) % folds  # (n,) fold of each document
            cand = np.full((n, size), -1, dtype=np.int64)
            logp = np.full((n, size), -np.inf, dtype=np.float32)
            for f in range(folds):
                held, rest = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
                model = self._fit_shortlister([train.texts[i] for i in rest], train.Y[rest])
                got, got_logp = _candidates(model.predict([train.texts[i] for i in held], k=size))
                cand[held, : got.shape[1]], logp[held, : got.shape[1]] = got, got_logp
        return {"cand": cand, "logp": logp, "folds": folds,
                "recall": round(100 * shortlist_recall(cand, train.Y), 2)}
