"""Where one model's training time goes: a cProfile of ``fit`` on a seeded subset of a dataset.

    python benchmarks/profile_fit.py --data ../shared/data/eurlex57k --model treaderxml [--max-train 3000]
        [--max-valid 200] [--seed 0] [--top 15] [--set KEY=VALUE ...]

Loads a seeded random sample of the train split and of the dataset's ``valid`` split (:func:`load_splits`),
fits the registered model once under :mod:`cProfile` and prints the ``--top`` functions by their own time
(``tottime``), each with its share of the whole fit. Torch operators show up as their built-in methods
(``run_backward`` = the whole backward pass, ``linear``, ``scaled_dot_product_attention``, ...), so the table
says whether the time is in the network or in Python-side batch assembly. The default overrides make it one
short epoch on one thread (``epochs=1 decay_epochs=0 w2v_epochs=1 threads=1 progress=false``, each where the
model's config has that key); ``--set`` adds or replaces them (e.g. ``teacher=false``).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import doc_parser, load_splits  # noqa: E402

DEFAULTS = ["epochs=1", "decay_epochs=0", "w2v_epochs=1", "threads=1", "progress=false"]


def main(argv: list[str] | None = None) -> None:
    p = doc_parser(__doc__)
    p.add_argument("--data", required=True, help="dataset folder with train and valid splits")
    p.add_argument("--model", required=True, help="registered model name (xmtc models)")
    p.add_argument("--max-train", type=int, default=3000, help="seeded sample of the train split")
    p.add_argument("--max-valid", type=int, default=200, help="seeded sample of the valid split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=15, help="functions listed")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = p.parse_args(argv)

    from xmtc import registry

    splits = load_splits(args.data, seed=args.seed, max_train=args.max_train, max_test=1,
                         max_valid=args.max_valid, valid="valid")
    cls = registry.get(args.model)
    base = cls.Config()
    defaults = [kv for kv in DEFAULTS if kv.split("=", 1)[0] in base.to_dict()]  # the keys this model's config has
    config = base.with_overrides([*defaults, f"seed={args.seed}", *args.set])
    model = cls(config)
    prof = cProfile.Profile()
    prof.enable()
    model.fit(splits.train, splits.valid)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(t for (_, _, t, _, _) in stats.stats.values())  # own time of every function: the whole fit
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[: args.top]
    print(f"{args.model} fit on {len(splits.train)} documents: {total:.1f} s profiled (CPU of the main thread "
          f"and waits)\n{'own s':>8} {'share':>6}  function")
    for (file, line, name), (_, _, tottime, _, _) in rows:
        where = name if file == "~" else f"{Path(file).name}:{line}({name})"
        print(f"{tottime:8.1f} {100 * tottime / total:5.1f}%  {where}")


if __name__ == "__main__":
    main()
