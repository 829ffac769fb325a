"""Text layer: tokenizer, vocabulary, word embeddings (trained, from a file or named pretrained ones) and
length-bucketed batching (shared by deep models)."""

from xmtc.text.batching import bucket_batches, pad_batch
from xmtc.text.embeddings import load_word_vectors, load_word_vectors_with_stats, train_word2vec
from xmtc.text.pretrained import load_embeddings, load_pretrained, pretrained_names
from xmtc.text.tokenizer import tokenize, tokenize_all
from xmtc.text.vocab import PAD, PAD_TOKEN, UNK, UNK_TOKEN, Vocab, encode_texts

__all__ = [
    "PAD",
    "PAD_TOKEN",
    "UNK",
    "UNK_TOKEN",
    "Vocab",
    "bucket_batches",
    "encode_texts",
    "load_embeddings",
    "load_pretrained",
    "load_word_vectors",
    "load_word_vectors_with_stats",
    "pad_batch",
    "pretrained_names",
    "tokenize",
    "tokenize_all",
    "train_word2vec",
]
