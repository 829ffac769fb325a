"""xmtc: extreme multi-label text classification (AttentionXML, LightAttention, TReaderXML, MAACF+).

Quick use::

    import xmtc
    train, test = xmtc.data.load("path/to/eurlex57k", splits=("train", "test"))
    model = xmtc.create("parabel").fit(train)
    top = model.predict(test, k=5)
    print(xmtc.metrics.report(test.Y, top, ks=(1, 3, 5), inv_prop=xmtc.metrics.inverse_propensity(train.Y)))
"""

from xmtc import data, metrics
from xmtc._version import __version__
from xmtc.registry import available, create, load

__all__ = ["__version__", "available", "create", "data", "load", "metrics"]
