"""Build the bundled sample dataset ``src/xmtc/datasets/eurlex-mini`` from the full EURLEX57K.

Re-runnable: the same source and arguments give byte-identical files (gzip with mtime 0), README included.

    python benchmarks/make_bundled.py                      # source ../shared/data/eurlex57k
    python benchmarks/make_bundled.py --source DIR --out DIR --seed 0 --n-train 3000 --n-test 600 \
        --max-words 150
"""

from __future__ import annotations

import argparse
import gzip
import io
from collections import Counter
from pathlib import Path

import numpy as np

from xmtc.data.readers import read_lines

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "eurlex57k"
DEFAULT_OUT = ROOT / "src" / "xmtc" / "datasets" / "eurlex-mini"


def write_gz(path: Path, lines: list[str]) -> None:
    """Write lines (each ending in a newline) as gzip with a fixed header, so reruns are byte-identical."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as f:
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))
    path.write_bytes(buf.getvalue())


def sample(source: Path, split: str, n: int, rng: np.random.Generator, max_words: int) -> dict[str, list]:
    texts = read_lines(source / f"{split}.texts.txt.gz")
    labels = read_lines(source / f"{split}.labels.txt.gz")
    ids = read_lines(source / f"{split}.ids.txt.gz")
    assert len(texts) == len(labels) == len(ids), f"{source}/{split}: files differ in length"
    rows = np.sort(rng.choice(len(texts), size=n, replace=False))
    return {
        "n_source": len(texts),
        "texts": [" ".join(texts[i].split()[:max_words]) for i in rows],
        "full_words": [len(texts[i].split()) for i in rows],
        "labels": [labels[i] for i in rows],
        "ids": [ids[i] for i in rows],
    }


def ancestors_closure(labels: set[str], parents: dict[str, list[str]]) -> set[str]:
    out, stack = set(labels), list(labels)
    while stack:
        for p in parents.get(stack.pop(), []):
            if p not in out:
                out.add(p)
                stack.append(p)
    return out


def stats_rows(name: str, part: dict[str, list]) -> str:
    lab = [s.split() for s in part["labels"]]
    words = [len(t.split()) for t in part["texts"]]
    used = len({x for row in lab for x in row})
    per_doc = [len(r) for r in lab]
    return (
        f"| {name} | {len(lab):,} | {used:,} | {np.mean(per_doc):.2f} | {max(per_doc)} "
        f"| {np.mean(words):.1f} | {np.mean(part['full_words']):.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=600)
    ap.add_argument("--max-words", type=int, default=150)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    train = sample(args.source, "train", args.n_train, rng, args.max_words)
    test = sample(args.source, "test", args.n_test, rng, args.max_words)

    edges = [tuple(line.split("\t")) for line in read_lines(args.source / "hierarchy.tsv.gz") if line]
    parents: dict[str, list[str]] = {}
    for child, parent in edges:
        parents.setdefault(child, []).append(parent)
    used = {x for part in (train, test) for s in part["labels"] for x in s.split()}
    keep = ancestors_closure(used, parents)
    hierarchy = [f"{c}\t{p}" for c, p in edges if c in keep]
    names = read_lines(args.source / "label_names.tsv.gz")
    label_names = [names[0]] + [line for line in names[1:] if line.split("\t", 1)[0] in keep]

    args.out.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", train), ("test", test)):
        write_gz(args.out / f"{split}.texts.txt.gz", part["texts"])
        write_gz(args.out / f"{split}.labels.txt.gz", part["labels"])
        write_gz(args.out / f"{split}.ids.txt.gz", part["ids"])
    write_gz(args.out / "hierarchy.tsv.gz", hierarchy)
    write_gz(args.out / "label_names.tsv.gz", label_names)

    train_labels = Counter(x for s in train["labels"] for x in s.split())
    test_occ = [x for s in test["labels"] for x in s.split()]
    unseen = {x for x in test_occ if x not in train_labels}
    unseen_occ = sum(x not in train_labels for x in test_occ)
    freq = np.array(sorted(train_labels.values()))
    size = sum(p.stat().st_size for p in args.out.glob("*.gz"))
    table = "\n".join(
        [
            "| split | docs | labels used | avg labels/doc | max labels | avg words/doc (kept) "
            "| avg words/doc (full) |",
            "|---|---|---|---|---|---|---|",
            stats_rows("train", train),
            stats_rows("test", test),
        ]
    )
    stats = f"""{table}

- Label index built from train: {len(train_labels):,} labels.
- Test labels never seen in the train sample: {len(unseen):,} distinct, {unseen_occ:,} of {len(test_occ):,}
  gold label occurrences; `xmtc.data.load` warns and counts them as misses.
- Train label frequency: median {int(np.median(freq))} documents per label; {int((freq == 1).sum()):,} labels
  have exactly one train document; the most frequent label has {int(freq[-1]):,}.
- `hierarchy.tsv.gz`: {len(hierarchy):,} edges.
- `label_names.tsv.gz`: {len(label_names) - 1:,} concepts (header line kept).
- Total size of the `.gz` files: {size / 1e6:.2f} MB.
"""
    readme = README.format(
        seed=args.seed, n_train=args.n_train, n_test=args.n_test, max_words=args.max_words,
        n_src_train=train["n_source"], n_src_test=test["n_source"], n_keep=len(keep), n_used=len(used),
        stats=stats,
    )  # fmt: skip
    (args.out / "README.md").write_text(readme, encoding="utf-8")
    print(stats)


README = """# eurlex-mini: a small real sample of EURLEX57K

A small real XMTC dataset bundled with xmtc for examples, tests and quick runs: EU legislative documents
tagged with EuroVoc concepts. Load it with
`xmtc.data.load(xmtc.data.bundled_path(), splits=("train", "test"))`.
It is a sample: figures measured on it are not comparable with published EURLEX57K results.

## Provenance and licence
- Source: EURLEX57K (Chalkidis, Fergadiotis, Malakasiotis, Androutsopoulos, "Large-Scale Multi-Label Text
  Classification on EU Legislation", ACL 2019), as converted in `../shared/data/eurlex57k` (see its README:
  text = header + recitals + main body, labels = EuroVoc concept ids, hierarchy = EuroVoc broader-term edges).
- Licence: the EURLEX57K data is distributed under CC BY-SA 4.0; this sample is under the same licence. The
  EUR-Lex texts are © European Union, reused under Commission Decision 2011/833/EU (reuse of Commission
  documents).

## How it was made (`benchmarks/make_bundled.py`, re-runnable, byte-identical output)
- `rng = numpy.random.default_rng({seed})`; train = the rows
  `np.sort(rng.choice({n_src_train}, {n_train}, replace=False))` of the EURLEX57K train split; then test =
  the rows `np.sort(rng.choice({n_src_test}, {n_test}, replace=False))` of its test split (same generator,
  drawn after train). The original order (by CELEX id) is kept.
- Texts: the first {max_words} whitespace-separated words of each document, re-joined with single spaces.
  Labels: the original label line, unchanged. `{{split}}.ids.txt.gz`: the CELEX id of each line.
- `hierarchy.tsv.gz` / `label_names.tsv.gz`: the rows of the {n_used:,} labels used in the sample and of all
  their EuroVoc ancestors ({n_keep:,} concepts in all).
- Files are gzip with mtime 0, so a rerun gives the same bytes.

## Statistics (printed by the script; words = whitespace tokens)
{stats}
"""


if __name__ == "__main__":
    main()
