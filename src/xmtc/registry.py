"""Model registry: ``get(name)``, ``create(name, cfg)``, ``available()`` and ``load(path)``.

The table itself (``MODELS`` and the ``@register`` decorator) lives in :mod:`xmtc.models.base`, next to the
contract the models implement, and is re-exported here for third-party models. This module sits above the
models: on first use it imports :mod:`xmtc.models.catalog`, which registers the built-in ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from xmtc.models.base import MODELS, load_model, model_class, register

if TYPE_CHECKING:
    from xmtc.config import Config
    from xmtc.models.base import XMTCModel

__all__ = ["MODELS", "available", "create", "get", "load", "register"]


def _ensure_builtin_models() -> None:
    import xmtc.models.catalog  # noqa: F401  (registers the built-in models)


def get(name: str) -> type[XMTCModel]:
    """The model class registered as ``name``; unknown names raise with a close match and the list."""
    _ensure_builtin_models()
    return model_class(name)


def available() -> list[str]:
    """Sorted names of all registered models."""
    _ensure_builtin_models()
    return sorted(MODELS)


def create(name: str, config: Config | None = None) -> XMTCModel:
    """Instantiate model ``name`` with ``config`` (its default config when None)."""
    cls = get(name)
    return cls(config if config is not None else cls.Config())


def load(path: str | Path) -> XMTCModel:
    """Load a saved model folder (``config.json`` + safetensors/npz). Never unpickles anything.

    ``path`` may also be a run folder written by ``xmtc train`` (the model sits in ``path/model``).
    """
    _ensure_builtin_models()
    return load_model(path)
