"""Shared test fixtures: tiny synthetic data (no network), dataset folders in the shared layout, a CLI runner.

The synthetic task has a known answer: every label owns three keywords, a document holds two keywords of each
of its 1-3 labels plus common filler words, so any working model reaches a high P@1 in seconds.

Real data (``/work/shared/data`` next to the repository, or the folder in ``$XMTC_SHARED_DATA``) is only used
through the ``shared_data`` fixture, which skips the test when the folder is absent.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from xmtc.data.labels import Hierarchy, LabelIndex
from xmtc.data.split import Dataset

REPO = Path(__file__).resolve().parents[1]
N_TINY_LABELS = 8
FILLER = ("the of and to in for on with by from as at this that is are was be report policy general "
          "common matter annual review public system").split()
UNSEEN_LABEL = "label_never_in_train"


def tiny_label_names(n_labels: int = N_TINY_LABELS) -> list[str]:
    return [f"lab{i}" for i in range(n_labels)]


SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze", "bi", "do")


def _keywords(label: str) -> list[str]:
    """Three alphabetic pseudo-words owned by ``label`` (no digits: tokenizers may drop them)."""
    i = int(label[3:])
    return [f"{SYLLABLES[i % 12]}{SYLLABLES[(j + 3) % 12]}{SYLLABLES[i // 12]}ton" for j in range(3)]


def make_tiny_corpus(n_docs: int, seed: int,
                     n_labels: int = N_TINY_LABELS) -> tuple[list[str], list[list[str]]]:
    """``n_docs`` (text, labels) pairs of the keyword task; label frequencies follow a power law.

    Every label appears at least once when ``n_docs >= n_labels`` (document i < n_labels carries label i).
    """
    rng = np.random.default_rng(seed)
    names = tiny_label_names(n_labels)
    freq = 1.0 / np.arange(1, n_labels + 1) ** 0.7
    freq /= freq.sum()
    texts, labels = [], []
    for i in range(n_docs):
        n_lab = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
        chosen = set(rng.choice(n_labels, size=n_lab, replace=False, p=freq).tolist())
        if i < n_labels:
            chosen.add(i)
        doc_labels = [names[j] for j in sorted(chosen)]
        words = [w for lab in doc_labels for w in rng.choice(_keywords(lab), size=2, replace=False).tolist()]
        words += rng.choice(FILLER, size=int(rng.integers(3, 7))).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(doc_labels)
    return texts, labels


def tiny_hierarchy(n_labels: int = N_TINY_LABELS) -> list[tuple[str, str]]:
    """Child -> parent edges: even labels under ``group_even``, odd ones under ``group_odd``."""
    names = tiny_label_names(n_labels)
    return [(name, "group_even" if i % 2 == 0 else "group_odd") for i, name in enumerate(names)]


def write_split(root: Path, split: str, texts: Sequence[str], labels: Sequence[Sequence[str]],
                gz: bool = True) -> None:
    """Write one split in the shared layout: ``{split}.texts.txt[.gz]`` + ``{split}.labels.txt[.gz]``."""
    suffix = ".txt.gz" if gz else ".txt"
    opener = gzip.open if gz else open
    with opener(root / f"{split}.texts{suffix}", "wt", encoding="utf-8") as fh:
        fh.writelines(t + "\n" for t in texts)
    with opener(root / f"{split}.labels{suffix}", "wt", encoding="utf-8") as fh:
        fh.writelines(" ".join(lab) + "\n" for lab in labels)


def write_tiny_dataset(root: Path, n_train: int = 160, n_valid: int = 0, n_test: int = 48, seed: int = 0,
                       hierarchy: bool = True, unseen_test_label: bool = True, gz: bool = True) -> Path:
    """A tiny dataset folder in the shared layout (train[/valid]/test, optional hierarchy.tsv.gz).

    With ``unseen_test_label`` the first test document also carries :data:`UNSEEN_LABEL`, a label absent
    from train, so evaluation has to report it as a miss.
    """
    root.mkdir(parents=True, exist_ok=True)
    write_split(root, "train", *make_tiny_corpus(n_train, seed), gz=gz)
    if n_valid:
        write_split(root, "valid", *make_tiny_corpus(n_valid, seed + 1), gz=gz)
    if n_test:
        texts, labels = make_tiny_corpus(n_test, seed + 2)
        if unseen_test_label:
            labels[0] = [*labels[0], UNSEEN_LABEL]
        write_split(root, "test", texts, labels, gz=gz)
    if hierarchy:
        with gzip.open(root / "hierarchy.tsv.gz", "wt", encoding="utf-8") as fh:
            fh.writelines(f"{c}\t{p}\n" for c, p in tiny_hierarchy())
    return root


def tiny_datasets(n_train: int = 160, n_test: int = 48, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, test) Datasets of the keyword task, built without the readers (label index from train)."""
    tr_texts, tr_labels = make_tiny_corpus(n_train, seed)
    te_texts, te_labels = make_tiny_corpus(n_test, seed + 2)
    index = LabelIndex.build(tr_labels)
    hierarchy = Hierarchy(tiny_hierarchy())
    Y, unseen, _ = index.encode(tr_labels)
    train = Dataset(Y=Y, label_index=index, texts=tr_texts, hierarchy=hierarchy, unseen=unseen, name="tiny",
                    split="train")
    Y, unseen, counts = index.encode(te_labels)
    test = Dataset(Y=Y, label_index=index, texts=te_texts, hierarchy=hierarchy, unseen=unseen,
                   unseen_labels=counts, name="tiny", split="test")
    return train, test


@pytest.fixture(scope="session")
def tiny_data() -> tuple[Dataset, Dataset]:
    """(train, test) in-memory Datasets of the keyword task (160 / 48 documents, 8 labels).

    Shared by the session: tests must not modify them.
    """
    return tiny_datasets()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Dataset folder in the shared layout with train/test splits and a hierarchy (no valid split)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def tiny_dir_with_valid(tmp_path_factory) -> Path:
    """Dataset folder with its own train/valid/test splits."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny_valid", n_valid=40)


def shared_data_root() -> Path:
    """``$XMTC_SHARED_DATA`` when set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("XMTC_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real benchmark data; skips the test when it is absent."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real benchmark data not found at {root} (set XMTC_SHARED_DATA)")
    return root


@dataclass
class CLIResult:
    """Outcome of one ``python -m xmtc`` run."""

    returncode: int
    stdout: str
    stderr: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return (f"xmtc {' '.join(self.args)} -> rc={self.returncode}\n--- stdout\n{self.stdout[-4000:]}"
                f"\n--- stderr\n{self.stderr[-4000:]}")


def cli_env() -> dict[str, str]:
    """Environment for CLI subprocesses: one thread, no colours, no progress bars."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_COLOR": "1", "TERM": "dumb",
            "COLUMNS": "120", "TQDM_DISABLE": "1", "PYTHONHASHSEED": "0"}


def run_cli(*args: str | os.PathLike, input: str | None = None, cwd: Path | None = None,
            timeout: float = 300) -> CLIResult:
    """Run ``python -m xmtc ARGS`` and capture its output."""
    argv = tuple(str(a) for a in args)
    proc = subprocess.run([sys.executable, "-m", "xmtc", *argv], input=input, capture_output=True, text=True,
                          cwd=cwd, env=cli_env(), timeout=timeout)
    return CLIResult(proc.returncode, proc.stdout, proc.stderr, argv)


@pytest.fixture(scope="session")
def xmtc_cli():
    """The :func:`run_cli` runner (``xmtc_cli("train", "--model", ...)`` -> :class:`CLIResult`)."""
    return run_cli


def assert_user_error(res: CLIResult, *fragments: str) -> str:
    """Exit status 2, one ``error:`` line naming ``fragments``, no traceback; returns the line."""
    assert res.returncode == 2, str(res)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout, str(res)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, str(res)
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]
