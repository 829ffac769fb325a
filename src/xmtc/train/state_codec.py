"""The byte image in which :func:`xmtc.train.distributed.share` broadcasts rank 0's pre-training state: a dict of
numpy arrays, scipy sparse matrices (as CSR), None and JSON values as an ``.npz`` archive, read back with
``allow_pickle=False`` (no object arrays, so no pickle travels between the ranks).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import scipy.sparse as sp


def pack_state(values: dict[str, Any]) -> bytes:
    """dict of ndarray / scipy sparse / None / JSON values -> an .npz image (no object arrays)."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for i, (name, value) in enumerate(values.items()):
        if value is None:
            meta[name] = ["none"]
        elif sp.issparse(value):
            csr = sp.csr_matrix(value)
            arrays.update({f"s{i}d": csr.data, f"s{i}i": csr.indices, f"s{i}p": csr.indptr})
            meta[name] = ["csr", i, list(csr.shape)]
        elif isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError(f"share: {name!r} is an object array; pass numbers, strings as JSON or CSR")
            arrays[f"a{i}"] = value
            meta[name] = ["array", i]
        else:
            meta[name] = ["json", value]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def unpack_state(data: bytes) -> dict[str, Any]:
    """The dict of :func:`pack_state`'s image (read with ``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        out: dict[str, Any] = {}
        for name, spec in meta.items():
            kind = spec[0]
            if kind == "none":
                out[name] = None
            elif kind == "csr":
                i = spec[1]
                out[name] = sp.csr_matrix((z[f"s{i}d"], z[f"s{i}i"], z[f"s{i}p"]), shape=tuple(spec[2]))
            elif kind == "array":
                out[name] = z[f"a{spec[1]}"]
            else:
                out[name] = spec[1]
    return out
