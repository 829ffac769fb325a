"""AttentionXML (and the XML-CNN / XML-RNN baselines) on a dataset folder: the old command line of this script,
run by :mod:`benchmarks.run`.

One model (``--model``, default attentionxml; ``--preset`` sets ``preset=``) trains in a subprocess on a seeded
sample of ``--max-train`` training documents (validation: the folder's valid split when it has one, else a
seeded hold-out of the config's ``valid_fraction``, at most ``valid_max_docs``; never the test split) and is
evaluated on a seeded sample of ``--max-test`` test documents. The result file holds, besides the runner's
figures, the wall and CPU seconds and the epochs of each training stage (``runs[0].stages``).

Examples::

    # profile: one epoch per level on a 4000-document sample of EURLEX57K
    nice -n 10 python benchmarks/attentionxml.py --data ../shared/data/eurlex57k --preset fast \\
        --max-train 4000 --max-test 1000 --set level_epochs=[1] --out /tmp/ax_profile.json

    # the 2-core CPU run of the fast preset on the whole of EURLEX57K (resumable per level)
    nice -n 10 python benchmarks/attentionxml.py --data ../shared/data/eurlex57k --preset fast \\
        --set bf16=true threads=2 --run-dir runs/ax --save runs/ax/model --out /tmp/ax_fast_eurlex57k.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import legacy, run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset folder with train/test texts")
    p.add_argument("--model", default="attentionxml", help="attentionxml, xmlcnn or xmlrnn")
    p.add_argument("--preset", default=None, help="attentionxml preset (medium, large, fast)")
    p.add_argument("--max-train", type=int, default=None, help="seeded random sample of N training documents")
    p.add_argument("--max-test", type=int, default=None, help="seeded random sample of N test documents")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    p.add_argument("--run-dir", default=None, help="checkpoints and metrics.jsonl (for --resume)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --run-dir")
    p.add_argument("--save", default=None, help="save the trained model folder here")
    p.add_argument("--out", default=None, help="JSON result file (and a .md table next to it)")
    args = p.parse_args(argv)
    new = ["--data", args.data, "--seed", str(args.seed),
           "--run", args.model, *([f"preset={args.preset}"] if args.preset else []), *args.set]
    for flag, value in (("--max-train", args.max_train), ("--max-test", args.max_test), ("--run-dir", args.run_dir),
                        ("--save", args.save), ("--out", args.out)):
        if value is not None:
            new += [flag, str(value)]
    if args.resume:
        new.append("--resume")
    return run.main(new, command=legacy.command("attentionxml.py", argv))


if __name__ == "__main__":
    sys.exit(main())
