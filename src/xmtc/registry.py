"""Model registry: a plain dict plus a decorator. ``create(name, cfg)`` and ``load(path)``."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from xmtc.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from xmtc.config import Config
    from xmtc.models.base import XMTCModel

MODELS: dict[str, type[XMTCModel]] = {}


def register(name: str):
    """Class decorator: ``@register("attentionxml")`` adds the model class to :data:`MODELS`."""

    def wrap(cls):
        if name in MODELS and MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        MODELS[name] = cls
        return cls

    return wrap


def _ensure_builtin_models() -> None:
    import xmtc.models  # noqa: F401  (registers the built-in models)


def get(name: str) -> type[XMTCModel]:
    """The model class registered as ``name``; unknown names raise with a close match and the list."""
    _ensure_builtin_models()
    if name not in MODELS:
        close = difflib.get_close_matches(name, list(MODELS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name]


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
    path = Path(path)
    if not (path / "meta.json").is_file() and (path / "model" / "meta.json").is_file():
        path = path / "model"
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise ModelLoadError(f"{path}: not an xmtc model folder (no meta.json)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{meta_file}: invalid JSON ({e.msg})") from None
    name = meta.get("model")
    if not isinstance(name, str):
        raise ModelLoadError(f"{meta_file}: missing 'model' entry")
    return get(name).load(path)
