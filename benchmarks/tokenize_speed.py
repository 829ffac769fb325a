"""CPU cost of xmtc's tokenizer (:func:`xmtc.text.tokenize_all`) on a dataset's training texts.

    python benchmarks/tokenize_speed.py --data ../shared/data/eurlex57k [--docs 5000] [--seed 0] [--out FILE.json]

Every model tokenizes every document once per fit and once per prediction, so the tokenizer must stay a small
part of a run: on EURLEX57K (laws of a few hundred to several thousand words) the target is the whole training
split (45,000 documents) in well under a minute of one core. The documents are a seeded random sample of
``--docs`` training documents (all of them when ``--docs`` is 0 or not below the split's size). Reported:
process CPU seconds, documents and words per CPU second, and the CPU milliseconds of the longest document (in
characters) alone, next to its word count (a tokenizer that is not linear in the text's length shows there
first).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import dataset_name, doc_parser, result_header, seeded_rows, timed, write_json  # noqa: E402
from benchmarks.schema import make_row  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = doc_parser(__doc__)
    p.add_argument("--data", required=True, help="dataset folder (its train split is tokenized)")
    p.add_argument("--docs", type=int, default=0, help="seeded random sample of training documents (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--out", type=Path, default=None, help="result JSON (benchmarks/schema.py)")
    args = p.parse_args(argv)

    from xmtc.data import load
    from xmtc.text import tokenize, tokenize_all

    (train,) = load(args.data, ("train",))
    if not train.texts:
        p.error(f"{args.data}: the train split has no documents")
    rows = seeded_rows(len(train.texts), args.docs or None, args.seed)
    texts = train.texts if rows is None else [train.texts[i] for i in rows]
    tokens, cpu, wall = timed(tokenize_all, texts)
    cpu = max(cpu, 1e-6)  # a tiny sample can round to 0 CPU seconds
    words = sum(len(t) for t in tokens)
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    _, long_cpu, _ = timed(tokenize, texts[longest])
    name = dataset_name(args.data)
    print(f"{name}: {len(texts):,} documents, {words:,} word tokens in {cpu:.2f} CPU s ({wall:.2f} s wall): "
          f"{len(texts) / cpu:,.0f} documents and {words / cpu:,.0f} words per CPU s; the longest document "
          f"({len(tokens[longest]):,} words) {long_cpu * 1e3:.1f} CPU ms", flush=True)
    if args.out:
        row = make_row("tokenize_all", "single", name, n_train=len(texts), n_test=None, seed=args.seed)
        row.update(words=words, tokenize_cpu_s=round(cpu, 3), tokenize_wall_s=round(wall, 3),
                   docs_per_cpu_s=round(len(texts) / cpu, 1), words_per_cpu_s=round(words / cpu),
                   longest_doc_words=len(tokens[longest]), longest_doc_cpu_ms=round(long_cpu * 1e3, 2))
        cmd = "python " + " ".join(["benchmarks/tokenize_speed.py", *(argv if argv is not None else sys.argv[1:])])
        write_json(args.out, {**result_header(cmd), "rows": [row]})


if __name__ == "__main__":
    main()
