"""Tokenizer, vocabulary, batching and word embeddings."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from xmtc.errors import DataError
from xmtc.text import (
    PAD,
    UNK,
    Vocab,
    bucket_batches,
    encode_texts,
    load_word_vectors,
    load_word_vectors_with_stats,
    pad_batch,
    tokenize,
    train_word2vec,
)


# ---------------------------------------------------------------- tokenizer
def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("The EC's anti-dumping duty of 3.5% (Regulation No 1234/2001).") == [
        "the", "ec", "s", "anti-dumping", "duty", "of", "3.5", "regulation", "no", "1234", "2001"]


def test_tokenize_unicode_numbers_and_edge_cases():
    assert tokenize("Größe CAFÉ naïve 中文 ΑΒΓ") == ["größe", "café", "naïve", "中文", "αβγ"]
    assert tokenize("1,000,000 items, 2.5kg; x_y --a--") == ["1,000,000", "items", "2.5", "kg", "x", "y", "a"]
    assert tokenize("") == []
    assert tokenize("  ... !!! ___ ") == []
    assert tokenize("end.Next") == ["end", "next"]  # a dot joins digits only


def test_tokenize_long_text_is_the_sum_of_its_parts():
    # Its speed is a benchmark (benchmarks/tokenize_speed.py); here: a long text tokenizes like its pieces.
    piece = "Commission Regulation (EC) No 1234/2001 of 3 May 2001 amending the anti-dumping duty. "
    one = tokenize(piece)
    assert one[:4] == ["commission", "regulation", "ec", "no"] and "1234" in one and "2001" in one
    assert tokenize(piece * 500) == one * 500


# ---------------------------------------------------------------- vocab
def test_vocab_order_specials_and_encode():
    vocab = Vocab.build([["b", "a", "c", "a"], ["b", "d"]])
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c", "d"]  # frequency desc, ties alphabetical
    assert len(vocab) == 6 and vocab.index("a") == 2 and vocab.index("zzz") == UNK
    ids = vocab.encode(["a", "zzz", "d", "b"], max_len=3)
    assert ids.dtype == np.int64 and ids.tolist() == [2, UNK, 5]
    assert vocab.encode([], 5).tolist() == []
    assert vocab.decode([2, 3]) == ["a", "b"]


def test_vocab_min_count_and_max_size():
    lists = [["x"] * 5 + ["y"] * 3 + ["z"]]
    assert Vocab.build(lists, min_count=2).tokens == ["<pad>", "<unk>", "x", "y"]
    assert Vocab.build(lists, max_size=3).tokens == ["<pad>", "<unk>", "x"]
    assert Vocab.build([["<pad>", "<unk>", "w"]]).tokens == ["<pad>", "<unk>", "w"]
    with pytest.raises(ValueError):
        Vocab.build(lists, max_size=1)


def test_vocab_json_round_trip(tmp_path):
    vocab = Vocab.build([tokenize("Ünïcödé words, words and more words 42")])
    vocab.to_json(tmp_path / "v.json")
    back = Vocab.from_json(tmp_path / "v.json")
    assert back == vocab and back.counts.tolist() == vocab.counts.tolist()
    assert back.encode(["words", "42", "nope"]).tolist() == vocab.encode(["words", "42", "nope"]).tolist()


def test_vocab_from_bad_json(tmp_path):
    f = tmp_path / "bad.json"
    f.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="bad.json"):
        Vocab.from_json(f)
    f.write_text('{"format": "xmtc-vocab", "version": 1, "tokens": ["a", "b"]}', encoding="utf-8")
    with pytest.raises(DataError, match="<pad>"):
        Vocab.from_json(f)
    with pytest.raises(DataError, match="not found"):
        Vocab.from_json(tmp_path / "missing.json")


def test_encode_texts_truncates_and_never_returns_empty():
    vocab = Vocab.build([tokenize("a b c d")])
    out = encode_texts(["a b c d", "", "!!!", "zzz a"], vocab, max_len=2)
    assert [o.tolist() for o in out] == [[vocab.index("a"), vocab.index("b")], [UNK], [UNK],
                                         [UNK, vocab.index("a")]]


# ---------------------------------------------------------------- batching
def test_pad_batch():
    ids, lengths = pad_batch([np.array([3, 4, 5]), np.array([7]), np.array([], dtype=np.int64)])
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[3, 4, 5], [7, PAD, PAD], [PAD, PAD, PAD]]
    assert lengths.tolist() == [3, 1, 0]
    ids, lengths = pad_batch([np.array([], dtype=np.int64)])
    assert ids.shape == (1, 1)


def test_bucket_batches_training_is_a_partition_with_little_padding():
    rng_lengths = np.random.default_rng(1).integers(1, 500, size=1003)
    batches = bucket_batches(rng_lengths, 16, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1003))
    assert all(len(b) <= 16 for b in batches)
    padded = sum(len(b) * rng_lengths[b].max() for b in batches)
    assert padded < 1.2 * rng_lengths.sum()  # random batching would pad ~1.9x here
    again = bucket_batches(rng_lengths, 16, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = bucket_batches(rng_lengths, 16, np.random.default_rng(1))
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=True))


def test_bucket_batches_prediction_keeps_order():
    lengths = np.array([5, 1, 9, 2, 2, 7, 3])
    batches = bucket_batches(lengths, 3, None)
    assert [b.tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    sorted_batches = bucket_batches(lengths, 3, None, sort=True)
    assert sorted(np.concatenate(sorted_batches).tolist()) == list(range(7))
    assert sorted_batches[0].tolist() == [2, 5, 0]
    assert bucket_batches(np.array([], dtype=np.int64), 4, None) == []


# ---------------------------------------------------------------- word vectors
def _corpus():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    return [list(rng.choice(words, size=40)) for _ in range(60)]


def test_word2vec_is_deterministic_with_a_seed():
    docs = _corpus()
    vocab = Vocab.build(docs + [["only-in-vocab"]])
    a = train_word2vec(docs, vocab, dim=16, epochs=2, seed=3)
    b = train_word2vec(docs, vocab, dim=16, epochs=2, seed=3)
    c = train_word2vec(docs, vocab, dim=16, epochs=2, seed=4)
    assert a.shape == (len(vocab), 16) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(a[PAD] == 0)
    missing = vocab.index("only-in-vocab")
    scale = a[2:missing].std()  # rows of words without a vector: uniform in [-std, std] of the trained ones
    assert 0 < np.abs(a[[1, missing]]).max() <= scale * (1 + 1e-5)


def _write_vectors(path, lines, compress=False):
    text = "\n".join(lines) + "\n"
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("header,compress", [(True, False), (False, False), (False, True)])
def test_load_word_vectors_formats(tmp_path, header, compress):
    vocab = Vocab.build([["apple", "pear", "kiwi", "new york"]])
    lines = ["apple 1 2 3", "Pear 4 5 6", "pear 7 8 9", "new york 1 1 1", "other 0 0 0"]
    if header:
        lines = ["5 3", *lines]
    f = tmp_path / ("v.txt.gz" if compress else "v.txt")
    _write_vectors(f, lines, compress)
    matrix, stats = load_word_vectors_with_stats(f, vocab)
    assert matrix.shape == (len(vocab), 3) and matrix.dtype == np.float32
    assert matrix[vocab.index("apple")].tolist() == [1, 2, 3]
    assert matrix[vocab.index("pear")].tolist() == [7, 8, 9]  # exact case wins over "Pear"
    assert matrix[vocab.index("new york")].tolist() == [1, 1, 1]  # a word with a space (GloVe 840B)
    assert np.all(matrix[PAD] == 0)
    assert stats["found"] == 3 and stats["coverage"] == pytest.approx(3 / 4)
    again = load_word_vectors(f, vocab, dim=3)
    assert np.array_equal(matrix, again)


def test_load_word_vectors_lowercase_fallback(tmp_path):
    vocab = Vocab.build([["paris"]])
    f = tmp_path / "v.txt"
    _write_vectors(f, ["Paris 1 2"])
    assert load_word_vectors(f, vocab)[vocab.index("paris")].tolist() == [1, 2]


@pytest.mark.parametrize("lines,match", [
    (["apple 1 2 3", "pear 4 5"], r"v.txt:2: expected a word and 3 numbers"),
    (["2 3", "apple 1 2 3", "pear 4 x 6"], r"v.txt:3: .*non-numeric"),
    (["2 4", "apple 1 2 3"], r"v.txt:2: expected a word and 4 numbers"),
    (["apple"], r"v.txt:1:"),
])
def test_load_word_vectors_bad_lines(tmp_path, lines, match):
    vocab = Vocab.build([["apple", "pear"]])
    f = tmp_path / "v.txt"
    _write_vectors(f, lines)
    with pytest.raises(DataError, match=match):
        load_word_vectors(f, vocab)


def test_load_word_vectors_missing_binary_and_dim_mismatch(tmp_path):
    vocab = Vocab.build([["apple"]])
    with pytest.raises(DataError, match="not found"):
        load_word_vectors(tmp_path / "nope.txt", vocab)
    f = tmp_path / "bin.txt"
    f.write_bytes(b"1 2\napple \xff\xfe\x00\x01\x02\x03\x04\x05\n")
    with pytest.raises(DataError, match=r"bin\.txt:2: not valid UTF-8.*binary word2vec"):
        load_word_vectors(f, vocab)
    g = tmp_path / "h.txt"
    _write_vectors(g, ["1 3", "apple 1 2 3"])
    with pytest.raises(DataError, match="dimension 3, expected 5"):
        load_word_vectors(g, vocab, dim=5)
