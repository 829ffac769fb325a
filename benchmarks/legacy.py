"""The command lines of the old per-model scripts (``maacf.py``, ``treaderxml.py``), run by :mod:`benchmarks.run`.

Those scripts took ``--run NAME [KEY=VALUE ...]`` lists like the runner, with two differences kept here:
``--set`` applied only to the runs of the script's own model (the runner applies it to every run whose config
has the key), and their defaults were ``--max-valid 1000 --threads 2`` with the script's model as the only
run. Subsets are now seeded random samples, not the first N documents (so the documents differ from the old
result files).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence


def parser(description: str, own_model: str) -> argparse.ArgumentParser:
    """The arguments every old ``--run`` script shared (add the script's own, then :func:`runner_argv`)."""
    p = argparse.ArgumentParser(description=description)
    p.set_defaults(own_model=own_model)
    p.add_argument("--data", required=True, help="dataset folder with train/test texts")
    p.add_argument("--run", nargs="+", action="append", default=None, metavar="NAME [KEY=VALUE]",
                   help=f"one model run (repeatable); default: --run {own_model}")
    p.add_argument("--max-train", type=int, default=None, help="seeded random sample of N training documents")
    p.add_argument("--max-test", type=int, default=None, help="seeded random sample of N test documents")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents")
    p.add_argument("--epochs", type=int, default=None, help="epochs for every run (default: the configs')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--set", nargs="*", default=[], help=f"overrides for every {own_model} run (key=value)")
    p.add_argument("--out", default=None, help="JSON result file (and a .md table next to it)")
    return p


def runner_argv(args: argparse.Namespace, extra: Sequence[str] = ()) -> list[str]:
    """The :mod:`benchmarks.run` command line of parsed old arguments (``extra`` appended)."""
    argv = ["--data", args.data, "--max-valid", str(args.max_valid), "--seed", str(args.seed),
            "--threads", str(args.threads)]
    for flag, value in (("--max-train", args.max_train), ("--max-test", args.max_test),
                        ("--epochs", args.epochs), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    for name, *own in args.run or [[args.own_model]]:
        argv += ["--run", name, *(args.set if name == args.own_model else []), *own]
    return [*argv, *extra]


def command(script: str, argv: Sequence[str]) -> str:
    return f"python benchmarks/{script} " + shlex.join(argv)
