"""Configuration dataclasses: JSON round-trip, ``key=value`` overrides and validation.

Every model has one config dataclass deriving from :class:`Config`. Each field has a default and a
one-line doc in ``field(metadata={"doc": ...})`` (see :func:`doc_field`). Unknown keys are errors,
never silently ignored (``--set hiddn=3`` fails and names the close match).

Presets: a config may name *selector* fields (``preset`` of AttentionXML, ``ablation`` of TReaderXML) whose value
picks a set of settings (:attr:`Config.PRESETS`). A preset fills only the fields the user did not give: a field
passed to the constructor, read from a JSON file or set with ``--set`` always keeps the user's value, whatever
it is (equal to the default or not). :meth:`Config.preset_fields` says which fields a preset filled.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from xmtc.errors import ConfigError

C = TypeVar("C", bound="Config")


def doc_field(default: Any, doc: str, **kwargs: Any) -> Any:
    """A dataclass field with a default value and a one-line documentation string."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"doc": doc}, **kwargs)
    return dataclasses.field(default=default, metadata={"doc": doc}, **kwargs)


@dataclasses.dataclass
class Config:
    """Base class of all configs. Subclasses are plain dataclasses with documented fields."""

    #: selector field -> its value -> the settings that value gives to the fields the user did not set.
    PRESETS: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {}
    #: field -> fields whose explicit value stops a preset from setting it (an explicit ``epochs`` stops a
    #: preset's ``level_epochs``, which would override it).
    PRESET_YIELDS_TO: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        object.__setattr__(obj, "_explicit", frozenset(names[: len(args)]) | frozenset(kwargs))
        object.__setattr__(obj, "_from_preset", {})
        return obj

    def __post_init__(self) -> None:
        self._apply_presets()

    def _apply_presets(self) -> None:
        explicit = getattr(self, "_explicit", frozenset())
        filled: dict[str, str] = {}
        for selector, table in self.PRESETS.items():
            settings = table.get(getattr(self, selector, None)) or {}
            for key, value in settings.items():
                if key in explicit or any(k in explicit for k in self.PRESET_YIELDS_TO.get(key, ())):
                    continue
                setattr(self, key, copy.deepcopy(value))
                filled[key] = f"{selector}={getattr(self, selector)}"
        object.__setattr__(self, "_from_preset", filled)

    def preset_fields(self) -> dict[str, str]:
        """Fields a preset filled (the user did not set them) -> the selector that did, e.g.
        ``{"hidden": "preset=fast"}``."""
        return dict(getattr(self, "_from_preset", {}))

    def explicit_fields(self) -> list[str]:
        """Sorted names of the fields the user set (constructor keywords, JSON keys, ``--set``)."""
        return sorted(getattr(self, "_explicit", frozenset()))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of all fields."""
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; write to ``path`` when given. Returns the JSON text."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, source: str = "config") -> C:
        """Build from a dict; unknown keys raise :class:`ConfigError` naming the key and a close match."""
        names = cls.field_names()
        for key in data:
            if key not in names:
                raise ConfigError(_unknown_key_message(cls, key, names, source))
        hints = typing.get_type_hints(cls)
        values = {k: _coerce(hints.get(k), v, k, source) for k, v in data.items()}
        cfg = cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls: type[C], path: str | Path) -> C:
        """Read a JSON file written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def replace(self: C, **changes: Any) -> C:
        """Copy with fields changed (validated)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def with_overrides(self: C, assignments: list[str]) -> C:
        """Apply ``key=value`` strings (values parsed as JSON when possible, else kept as strings).

        The result keeps the fields this config's user set plus the new ones; the others are rebuilt from the
        defaults and the (possibly new) presets, so ``preset=fast`` after ``epochs=1`` keeps ``epochs=1``.
        """
        full = self.to_dict()
        explicit = getattr(self, "_explicit", frozenset(full))
        data = {k: v for k, v in full.items() if k in explicit}
        hints = typing.get_type_hints(type(self))
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            key, raw = item.split("=", 1)
            key = key.strip()
            if key not in full:
                raise ConfigError(_unknown_key_message(type(self), key, list(full), "--set"))
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            if hints.get(key) is str and not isinstance(value, str):
                value = raw  # a str field keeps the text as typed (--set name=123)
            data[key] = value
        return type(self).from_dict(data, source="--set")

    def validate(self) -> None:
        """Check field values; raise :class:`ConfigError` with a message like 'k must be positive, but is 0'."""

    @classmethod
    def describe(cls) -> dict[str, str]:
        """Field name -> one-line doc."""
        return {f.name: f.metadata.get("doc", "") for f in dataclasses.fields(cls)}


def check(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def _unknown_key_message(cls: type, key: str, names: list[str], source: str) -> str:
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: unknown key {key!r} for {cls.__name__}{hint}; valid keys: {', '.join(sorted(names))}"


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    """Coerce JSON values to the annotated type where unambiguous (int -> float, list -> tuple)."""
    if hint is None:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _coerce(non_none[0], value, key, source)
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{source}: {key} must be an integer, but is {value!r}")
        return int(value)
    if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{source}: {key} must be a number, but is {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{source}: {key} must be true or false, but is {value!r}")
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{source}: {key} must be a string, but is {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list (JSON, e.g. [1, 2]), but is {value!r}")
        if origin is list and len(args) == 1:
            value = [_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            value = [_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(value) if origin is tuple else list(value)
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a JSON object, but is {value!r}")
    return value
