"""``torchrun ... -m xmtc train|predict``: what the CLI does differently when several processes run it.

Every rank parses the same arguments, reads the same run folder and data and makes the same checks; then
:func:`start_training` joins the process group and waits until every rank has checked (so that rank 0's first
write cannot fail another rank's "folder exists" check). Only rank 0 writes ``run.json``, the model folder and
the test report; the other ranks stop after ``fit``. ``xmtc predict`` splits each chunk of input rows into
contiguous blocks, one per rank, gathers the top-k in rank order (= input order), and rank 0 writes them.
Nothing here changes a run in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xmtc.errors import ConfigError, XMTCError


def launched() -> bool:
    """Started by torchrun with more than one process (read from the environment; imports no torch)."""
    import os

    try:
        return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def start_training(model: str, cls: type, cfg: Any) -> bool:
    """Join the process group of a torchrun launch (after every rank's checks); True on the rank that writes.

    Raises:
        ConfigError: ``model`` is not a deep model (only those train data-parallel).
    """
    if not launched():
        return True
    from xmtc.models.deep import DeepTextModel
    from xmtc.train import distributed, resolve_device

    if not issubclass(cls, DeepTextModel):
        raise ConfigError(f"{model!r} does not train data-parallel; torchrun is for the deep models "
                          "(attentionxml, lightattention, treaderxml, maacf, xmlcnn, xmlrnn): run it without "
                          "torchrun")
    distributed.init(resolve_device(cfg.device))
    distributed.barrier()
    return distributed.is_main()


def start_predict(input_path: str, sets: bool) -> bool:
    """Join the process group for a sharded ``xmtc predict``; True on the rank that writes."""
    if not launched():
        return True
    if input_path == "-":
        raise XMTCError("--input -: under torchrun every process reads the input; name a file")
    if sets:
        raise XMTCError("xmtc predict --sets does not shard over processes; run it without torchrun")
    from xmtc.train import distributed

    distributed.init("cpu")  # a deep model joined already with its own device (on load)
    return distributed.is_main()


def predict(model, texts: Sequence[str], k: int):
    """``model.predict(texts, k)``; under torchrun each rank predicts a contiguous block of ``texts`` and every
    rank gets all rows back, in input order."""
    if not launched():
        return model.predict(list(texts), k=k)
    import numpy as np

    from xmtc.models.base import TopK
    from xmtc.train import distributed

    lo, hi = distributed.shard_range(len(texts))
    indices = np.full((hi - lo, k), -1, dtype=np.int32)
    scores = np.full((hi - lo, k), -np.inf, dtype=np.float32)
    if hi > lo:
        top = model.predict(list(texts[lo:hi]), k=k)
        indices[:, : top.k], scores[:, : top.k] = top.indices, top.scores
    return TopK(distributed.gather_rows(indices), distributed.gather_rows(scores), n_labels=len(model.label_index_))


class NullSink:
    """Where the ranks other than 0 write their (identical) rows: nowhere."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def discard(self) -> None:
        pass
