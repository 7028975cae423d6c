"""Shingles and MinHash signatures for batches of texts. Pure: numpy and rensa, no ORM.

The whole batch is tokenized at once in numpy rather than text by text in Python: splitting and
joining n-grams per text in Python ran at about 8,000 texts/s, a third of the time budget
(docs/curation.md). Texts are normalized (NFC, lower case, ASCII punctuation and whitespace as
separators), then cut into word tokens (word mode) or kept as a byte stream with single spaces
between words (char mode, for short prompts). A shingle is n consecutive tokens, hashed to 64
bits with fixed constants, so the same text gives the same shingles in every process, on every
worker; rensa's MinHash over those hashes is seeded and deterministic too.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import numpy as np
import rensa

NUM_PERM = 128
SEED = 1729
ALGORITHM = f"rensa-{rensa.RMinHash.ALGORITHM_VERSION}-v1"  # part of every stored fingerprint
WORD, CHAR = "word", "char"

_U64 = np.uint64
_PRIME = _U64(0x100000001B3)
_GOLDEN = _U64(0x9E3779B97F4A7C15)
# Separators: NUL (between texts), ASCII whitespace and ASCII punctuation.
_SEPARATOR = np.zeros(256, dtype=bool)
_SEPARATOR[[0, 9, 10, 11, 12, 13, 32]] = True
_SEPARATOR[[ord(c) for c in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]] = True


@dataclass(frozen=True)
class Shingles:
    """Shingle hashes of a batch: those of text i are hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # uint64, len(texts) + 1

    def of(self, index: int) -> np.ndarray:
        return self.hashes[int(self.offsets[index]) : int(self.offsets[index + 1])]


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads polynomial hashes over all 64 bits."""
    with np.errstate(over="ignore"):
        z = values ^ (values >> _U64(30))
        z = z * _U64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> _U64(27))
        z = z * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def shingle(texts: list[str], *, mode: str, size: int) -> Shingles:
    """The shingle hashes of each text; a text shorter than `size` tokens is one shingle."""
    data = _normalized_bytes(texts)
    separator = _SEPARATOR[data]
    if mode == WORD:
        tokens, owners = _words(data, separator)
    else:
        tokens, owners = _characters(data, separator)
    return _ngrams(tokens, owners, len(texts), size)


def signatures(shingles: Shingles) -> np.ndarray:
    """MinHash signatures, one row of NUM_PERM uint32 per text (all 0xFFFFFFFF when empty)."""
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
        shingles.hashes, shingles.offsets, NUM_PERM, SEED
    )
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(-1, NUM_PERM)


def jaccard(left: np.ndarray, right: np.ndarray) -> float:
    """Exact Jaccard similarity of two sets of shingle hashes (each sorted and unique)."""
    if not len(left) or not len(right):
        return 0.0
    common = len(np.intersect1d(left, right, assume_unique=True))
    return common / (len(left) + len(right) - common)


def text_hash(text: str) -> int:
    """A signed 63-bit hash of the normalized text, for exact-duplicate reports (bigint)."""
    normalized = " ".join(unicodedata.normalize("NFC", text).split())
    return int.from_bytes(hashlib.blake2b(normalized.encode(), digest_size=8).digest()) >> 1


def _normalized_bytes(texts: list[str]) -> np.ndarray:
    # One NFC + lower() over the joined batch: C loops, not a Python call per text.
    joined = unicodedata.normalize("NFC", "\x00".join(t.replace("\x00", " ") for t in texts))
    encoded = joined.lower().encode("utf-8", "replace")
    return np.frombuffer(encoded + b"\x00", dtype=np.uint8)  # a final NUL ends the last text


def _owners(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The index of the text each byte position belongs to (texts are NUL-separated)."""
    ends = np.flatnonzero(data == 0)
    return np.searchsorted(ends, positions)


def _words(data: np.ndarray, separator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash per word, from prefix sums: (H[end] - H[start]) / PRIME**start, mixed.

    Four passes over the bytes; a per-byte position-in-word array took nine (docs/curation.md).
    """
    starts, ends = _word_bounds(separator)
    if not len(starts):
        return np.zeros(0, _U64), np.zeros(0, np.int64)
    powers, inverses = _powers(len(data))
    prefix = np.zeros(len(data) + 1, dtype=_U64)
    with np.errstate(over="ignore"):
        np.cumsum(data * powers, out=prefix[1:])
        words = (prefix[ends] - prefix[starts]) * inverses[starts]
    return mix(words), _owners(data, starts)


def _word_bounds(separator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    word = ~separator
    edges = np.flatnonzero(np.diff(np.concatenate(([False], word, [False])).view(np.int8)))
    return edges[0::2], edges[1::2]


_POWERS: list[np.ndarray] = [np.ones(1, dtype=_U64), np.ones(1, dtype=_U64)]


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """PRIME**i and PRIME**-i (mod 2**64; PRIME is odd, so it has an inverse), cached."""
    if len(_POWERS[0]) < length + 1:
        size = max(2 * (length + 1), 2 * len(_POWERS[0]))  # headroom: few regrowths
        inverse = _U64(pow(int(_PRIME), -1, 2**64))
        with np.errstate(over="ignore"):
            _POWERS[0] = np.cumprod(np.full(size, _PRIME, dtype=_U64)) * inverse
            _POWERS[1] = np.cumprod(np.full(size, inverse, dtype=_U64)) * _PRIME
    return _POWERS[0][:length], _POWERS[1][: length + 1]


def _characters(data: np.ndarray, separator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The normalized bytes of each text, words joined by one space (a token of its own)."""
    starts, ends = _word_bounds(separator)
    if not len(starts):
        return np.zeros(0, _U64), np.zeros(0, np.int64)
    word_owners = _owners(data, starts)
    lengths = ends - starts
    stream = data[~separator].astype(_U64) + _U64(1)
    owners = np.repeat(word_owners, lengths)
    between = np.flatnonzero(word_owners[:-1] == word_owners[1:])  # a next word, same text
    at = np.cumsum(lengths)[between]
    return np.insert(stream, at, _U64(33)), np.insert(owners, at, word_owners[between])


def _ngrams(tokens: np.ndarray, owners: np.ndarray, count: int, size: int) -> Shingles:
    counts = np.bincount(owners, minlength=count)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    full = max(len(tokens) - size + 1, 0)
    with np.errstate(over="ignore"):
        hashes = np.zeros(full, dtype=_U64)
        for offset in range(size):
            hashes = hashes * _GOLDEN + tokens[offset : offset + full]
        valid = owners[:full] == owners[size - 1 : size - 1 + full] if full else np.zeros(0, bool)
        short = np.flatnonzero((counts > 0) & (counts < size))
        extra = [_whole(tokens[first[i] : first[i] + counts[i]]) for i in short]
    all_hashes = np.concatenate((mix(hashes[valid]), np.array(extra, dtype=_U64)))
    all_owners = np.concatenate((owners[:full][valid], short))
    order = np.argsort(all_owners, kind="stable")
    offsets = np.searchsorted(all_owners[order], np.arange(count + 1)).astype(_U64)
    return Shingles(all_hashes[order], offsets)


def _whole(tokens: np.ndarray) -> np.uint64:
    """A text shorter than one shingle: all of its tokens as one shingle."""
    value = _U64(0)
    with np.errstate(over="ignore"):
        for token in tokens:
            value = value * _GOLDEN + token
        return mix(np.array([value], dtype=_U64))[0]
