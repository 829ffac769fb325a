"""xmtc: extreme multi-label text classification (AttentionXML, LightAttention, TReaderXML, MAACF+).

Quick use::

    import xmtc
    train, test = xmtc.data.load("path/to/eurlex57k", splits=("train", "test"))
    model = xmtc.create("parabel").fit(train)
    top = model.predict(test, k=5)
    print(xmtc.metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=xmtc.metrics.inverse_propensity(train.Y)))
"""

__version__ = "0.1.0"

from xmtc import data, metrics  # noqa: E402
from xmtc.registry import available, create, load  # noqa: E402

__all__ = ["__version__", "available", "create", "data", "load", "metrics"]
