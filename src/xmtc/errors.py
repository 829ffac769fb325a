"""Exceptions a user can cause. The CLI turns these into one clear message, never a traceback."""


class XMTCError(Exception):
    """Base class of errors caused by user input (files, configs, arguments)."""


class DataError(XMTCError):
    """Malformed or inconsistent data; the message names the file, line and value."""


class ConfigError(XMTCError):
    """Unknown config key or invalid value."""


class ModelLoadError(XMTCError):
    """A model folder that is missing, from an incompatible version, or tampered with."""
