"""xmtc: extreme multi-label text classification (AttentionXML, LightAttention, TReaderXML, MAACF+).

Quick use::

    import xmtc
    train, test = xmtc.data.load("path/to/eurlex57k", splits=("train", "test"))
    model = xmtc.create("parabel").fit(train)
    top = model.predict(test, k=5)
    print(xmtc.metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=xmtc.metrics.inverse_propensity(train.Y)))
"""

import os

# OpenMP threads that spin while they wait burn the CPU their partner thread needs: with 2 threads on a busy
# machine a training step cost 6x more CPU with libgomp's default (active) policy. libgomp reads this when torch
# loads it, so it takes effect when xmtc is imported before torch (the CLI always is); a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from xmtc import data, metrics  # noqa: E402
from xmtc._version import __version__  # noqa: E402
from xmtc.registry import available, create, load  # noqa: E402

__all__ = ["__version__", "available", "create", "data", "load", "metrics"]
