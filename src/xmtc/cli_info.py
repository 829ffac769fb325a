"""CLI commands ``print-config``, ``models`` and ``datasets``, added to the ``xmtc`` app by :func:`add_commands`.

This module never imports :mod:`xmtc.cli` (the CLI imports it).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xmtc.cli_common import info

__all__ = ["add_commands", "default_data_root"]


def print_config(
    name: str = typer.Argument(..., help="Model name."),
    docs: bool = typer.Option(False, "--docs", help="List every field with its default and documentation."),
) -> None:
    """Print the default config of a model as a JSON template for train --config.

    Examples:

      xmtc print-config attentionxml > my.json

      xmtc train --model attentionxml --config my.json --out runs/mine

      xmtc print-config parabel --docs
    """
    from xmtc import registry

    cls = registry.get(name)
    cfg = cls.Config()
    if not docs:
        typer.echo(cfg.to_json())
        return
    values, described = cfg.to_dict(), cls.Config.describe()
    width = max(len(f) for f in values)
    typer.echo(f"{name} ({cls.Config.__name__}); set with --set key=value or a --config JSON file")
    for field, value in values.items():
        typer.echo(f"  {field:<{width}}  {json.dumps(value):<12}  {described.get(field, '')}")


def models() -> None:
    """List the registered models (name: first line of the docstring).

    Example:

      xmtc models
    """
    from xmtc import registry

    for name in registry.available():
        cls = registry.get(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        typer.echo(f"{name:<16}{doc[0] if doc else ''}")


def default_data_root() -> Path:
    """``../shared/data`` (seen from the working folder or the source checkout), else the bundled data."""
    from xmtc.data import bundled_path

    checkout = Path(__file__).resolve().parents[3]
    for cand in (Path.cwd().parent / "shared" / "data", checkout / "shared" / "data"):
        if cand.is_dir():
            return cand
    return bundled_path().parent


def datasets(
    root: Path | None = typer.Argument(None, help="Folder to search (default: ../shared/data, else the "
                                          "bundled datasets)."),
) -> None:
    """List the datasets under a folder: layout and documents per split.

    Examples:

      xmtc datasets

      xmtc datasets ../shared/data
    """
    from xmtc.data import find_datasets

    root = default_data_root() if root is None else root.expanduser()
    found = find_datasets(root)
    if not found:
        info(f"no datasets found under {root}")
        return
    width = max(len(d["name"]) for d in found)
    for d in found:
        if d.get("layout") is None:
            typer.echo(f"{d['name']:<{width}}  incomplete: {d.get('error', '')}")
            continue
        splits = ", ".join(f"{s} {n:,}" if n is not None else s for s, n in d["splits"].items())
        typer.echo(f"{d['name']:<{width}}  {d['layout']:<12}  {splits:<40}  {d['path']}")


def add_commands(app: typer.Typer) -> None:
    """Register ``print-config``, ``models`` and ``datasets`` on the ``xmtc`` app."""
    app.command("print-config")(print_config)
    app.command()(models)
    app.command()(datasets)
