"""Reading training checkpoints (``RUN/checkpoints/*.pt``): one clear error for a file that cannot be used.

Checkpoints are written atomically (a ``.tmp`` file renamed into place), so a kill during training never
leaves a half-written one; a truncated or corrupt file comes from a full disk, a partial copy or a damaged
drive. Reading never runs foreign code (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from xmtc.errors import XMTCError

_REQUIRED = ("model", "optimizer", "epoch", "step")


def _unusable(path: Path, why: str) -> XMTCError:
    return XMTCError(
        f"{path}: cannot resume from this checkpoint: {why}; delete it to restart that training stage from "
        f"scratch (or rerun without --resume into a new --out folder)"
    )


def load_checkpoint(path: str | Path, map_location: torch.device | str | None = None,
                    data: bytes | None = None) -> dict[str, Any]:
    """The dict saved by the training loop, read with ``weights_only=True`` (from ``data``, the file's bytes,
    when given: data-parallel ranks read rank 0's copy; ``path`` then only names it in errors).

    Raises:
        XMTCError: the file is truncated, corrupt, holds objects other than tensors and plain values, or is
            not a checkpoint of the training loop (the message names the file and says to delete it).
    """
    path = Path(path)
    try:
        ckpt = torch.load(io.BytesIO(data) if data is not None else path, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _unusable(path, f"it is corrupt or holds objects other than tensors ({first[:160]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _unusable(path, f"the file is truncated or corrupt ({detail[:160]})") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in _REQUIRED):
        have = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise _unusable(path, f"it is not a checkpoint of the xmtc training loop (holds {have})")
    return ckpt
