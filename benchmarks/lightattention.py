"""LightAttention vs AttentionXML under the same budget (same encoder and epochs): the old command line of this
script, run by :mod:`benchmarks.run`.

Each model of ``--models`` trains in its own subprocess on the same documents: a seeded sample of
``--max-train`` training documents, a seeded hold-out of ``--max-valid`` of them for early stopping (as
before, also where the dataset has its own valid split; never the test split) and a seeded sample of
``--max-test`` test documents. ``--set`` applies to every model, ``--la-set`` / ``--ax-set`` to LightAttention /
AttentionXML only; ``--trees N`` trains LightAttention with N models once and also evaluates its first
1..N-1 models (the paper's Table III; runner ``--members``). ``--save DIR`` saves each model to DIR/NAME.

Example::

    nice -n 10 python benchmarks/lightattention.py --data ../shared/data/debian-tags --epochs 5 \\
        --set emb_dim=100 hidden=96 fc=[128] max_len=128 --out /tmp/la_debian.json

is ``python -m benchmarks.run --data ../shared/data/debian-tags --valid-split holdout --max-valid 1000
--epochs 5 --run lightattention emb_dim=100 ... n_models=1 --run attentionxml emb_dim=100 ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import legacy, run  # noqa: E402

PREFIX = {"lightattention": "la_set", "attentionxml": "ax_set"}


def runner_argv(args: argparse.Namespace) -> list[str]:
    argv = ["--data", args.data, "--valid-split", "holdout", "--max-valid", str(args.max_valid),
            "--epochs", str(args.epochs), "--seed", str(args.seed)]
    for flag, value in (("--max-train", args.max_train), ("--max-test", args.max_test), ("--out", args.out)):
        if value is not None:
            argv += [flag, str(value)]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    for name in names:
        own = [*args.set, *getattr(args, PREFIX.get(name, ""), [])]
        argv += ["--run", name, *own, *([f"n_models={args.trees}"] if name == "lightattention" else [])]
    if args.trees > 1:
        argv.append("--members")
    if args.save is not None:  # DIR/NAME for every model, as before
        argv += ["--save", str(Path(args.save) / names[0]) if len(names) == 1 else str(args.save)]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder with train/test texts")
    p.add_argument("--models", default="lightattention,attentionxml", help="comma-separated model names")
    p.add_argument("--max-train", type=int, default=None, help="seeded random sample of N training documents")
    p.add_argument("--max-test", type=int, default=None, help="seeded random sample of N test documents")
    p.add_argument("--max-valid", type=int, default=1000, help="validation documents held out of train")
    p.add_argument("--epochs", type=int, default=5, help="epochs per network (both models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="config overrides for every model (key=value)")
    p.add_argument("--la-set", nargs="*", default=[], help="overrides for lightattention only")
    p.add_argument("--ax-set", nargs="*", default=[], help="overrides for attentionxml only")
    p.add_argument("--trees", type=int, default=1, help="LightAttention n_models; evaluates the first 1..N")
    p.add_argument("--out", default=None, help="JSON result file (and a .md table next to it)")
    p.add_argument("--save", default=None, help="save each trained model to SAVE/<model name>")
    args = p.parse_args(argv)
    return run.main(runner_argv(args), command=legacy.command("lightattention.py", argv))


if __name__ == "__main__":
    sys.exit(main())
