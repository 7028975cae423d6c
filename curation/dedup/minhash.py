"""Shingles and MinHash signatures for batches of texts. Pure numpy, no ORM.

Everything works on whole batches of texts at once, in numpy, never text by text in Python
(docs/curation.md, "How near duplicates are found"). Texts are normalized (NFC, lower case,
ASCII punctuation and whitespace as separators), cut into words, each word hashed to 64 bits
from its bytes read eight at a time, and n consecutive word hashes combined into a shingle hash
(word mode); in char mode a shingle is n consecutive bytes of the text with single spaces
between words (for short prompts). All constants are fixed, so the same text gives the same
shingles and signature in every process, on every worker, in any batch.

Signatures are one-permutation MinHash with several draws a shingle and optimal densification
(Li, Owen and Zhang 2012; Shrivastava 2017): every shingle hash is rehashed DRAWS times, each
draw lands in one of NUM_PERM bins (its top 7 bits) and the bin keeps its smallest value; bins
left empty borrow the value of the first non-empty bin on a fixed pseudo-random probe sequence.
Two texts agree on a bin with probability close to their Jaccard similarity, as with NUM_PERM
independent permutations, for O(shingles x DRAWS) work instead of O(shingles x NUM_PERM): the
rensa (Rust) signatures plus copying them out into numpy cost 26 us a text, these 5 us.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import numpy as np

NUM_PERM = 128
DRAWS = 2  # draws a shingle: a 115-word text leaves 17% of the bins empty before densifying
_VALUE_MASK = (1 << 25) - 1  # 25-bit values: two draws from one 64-bit hash
ALGORITHM = f"oph{DRAWS}-v2"  # part of every stored fingerprint: a change re-signs every item
WORD, CHAR = "word", "char"
EMPTY = np.uint32(0xFFFFFFFF)

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_BIN_SHIFT = _U64(64 - 7)  # NUM_PERM = 2**7 bins
# Separators: NUL (between texts), ASCII whitespace and ASCII punctuation.
_SEPARATORS = b"\x00\t\n\x0b\x0c\r !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
# bytes.translate maps every byte to 1 (separator) or 0 in one C loop: 5x a numpy lookup.
_SEPARATOR_TABLE = bytes(int(byte in _SEPARATORS) for byte in range(256))
# The low `length` bytes of a little-endian uint64: a word's bytes, without what follows it.
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [2**64 - 1], dtype=_U64)
_SEEDS = [0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89]
_DRAW_SEEDS = np.array(_SEEDS[: DRAWS // 2], dtype=_U64)  # one 64-bit hash gives two draws
_PROBES = 48  # attempts to find a non-empty bin for an empty one
_PROBE = np.random.default_rng(1729).integers(0, NUM_PERM, size=(_PROBES, NUM_PERM))


@dataclass(frozen=True)
class Shingles:
    """Shingle hashes of a batch: those of text i are hashes[offsets[i]:offsets[i + 1]]."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, len(texts) + 1

    def of(self, index: int) -> np.ndarray:
        return self.hashes[int(self.offsets[index]) : int(self.offsets[index + 1])]

    def owners(self) -> np.ndarray:
        """The index of the text each shingle belongs to."""
        return np.repeat(np.arange(len(self.offsets) - 1), np.diff(self.offsets))


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads polynomial hashes over all 64 bits."""
    with np.errstate(over="ignore"):
        z = values ^ (values >> _U64(30))
        z *= _U64(0xBF58476D1CE4E5B9)
        z ^= z >> _U64(27)
        z *= _U64(0x94D049BB133111EB)
        z ^= z >> _U64(31)
        return z


def shingle(texts: list[str], *, mode: str, size: int) -> Shingles:
    """The shingle hashes of each text; a text shorter than `size` tokens is one shingle."""
    encoded = _normalized_bytes(texts)
    data = np.frombuffer(encoded, dtype=np.uint8)
    separator = np.frombuffer(encoded.translate(_SEPARATOR_TABLE), dtype=np.bool_)
    if mode == WORD:
        tokens, owners = _words(data, separator, len(texts))
    else:
        tokens, owners = _characters(data, separator, len(texts))
    return _ngrams(tokens, owners, len(texts), size)


def signatures(shingles: Shingles) -> np.ndarray:
    """MinHash signatures, one row of NUM_PERM uint32 per text (all EMPTY for no shingles)."""
    count = len(shingles.offsets) - 1
    matrix = np.full(count * NUM_PERM, EMPTY, dtype=np.uint32)
    cells = shingles.owners() * NUM_PERM
    with np.errstate(over="ignore"):
        for seed in _DRAW_SEEDS:
            drawn = mix(shingles.hashes ^ seed)
            # Two draws from each 64-bit hash: 7 bits pick a bin, 25 more are the value.
            for shift in (_U64(57), _U64(50)):
                bins = ((drawn >> shift) & _U64(NUM_PERM - 1)).view(np.int64)
                bins += cells
                values = ((drawn >> (shift - _U64(25))) & _U64(_VALUE_MASK)).astype(np.uint32)
                np.minimum.at(matrix, bins, values)
    return _densify(matrix.reshape(count, NUM_PERM))


def _densify(matrix: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the first non-empty bin on its fixed probe sequence."""
    flat = matrix.reshape(-1)
    empty = np.flatnonzero(flat == EMPTY)
    rows, bins = empty // NUM_PERM * NUM_PERM, empty % NUM_PERM
    filled = flat.copy()  # probe the original bins only, so the order of filling is irrelevant
    for attempt in range(_PROBES):
        if not len(empty):
            break
        values = flat[rows + _PROBE[attempt, bins]]
        found = values != EMPTY
        filled[empty[found]] = values[found]
        empty, rows, bins = empty[~found], rows[~found], bins[~found]
    return filled.reshape(matrix.shape)


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


def _normalized_bytes(texts: list[str]) -> bytes:
    # One NFC + lower() over the joined batch: C loops, not a Python call per text.
    joined = "\x00".join(texts)
    if joined.count("\x00") >= len(texts):  # a NUL inside a text would split it in two
        joined = "\x00".join(t.replace("\x00", " ") for t in texts)
    if not joined.isascii():  # NFC is the identity on ASCII, and quick-checking it is not free
        joined = unicodedata.normalize("NFC", joined)
    encoded = joined.lower().encode("utf-8", "replace")
    # A final NUL ends the last text; 8 more let the word reader read 8 bytes anywhere.
    return encoded + b"\x00" * 9


def _word_bounds(separator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each run of non-separator bytes."""
    # separator[-1] is a NUL and separator[0] is compared against an implicit separator.
    edges = np.flatnonzero(separator[1:] != separator[:-1]) + 1
    if not separator[0]:
        edges = np.concatenate(([0], edges))
    return edges[0::2], edges[1::2]


def _words(data: np.ndarray, separator: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash per word from its bytes read 8 at a time, and the text it belongs to.

    One unaligned 8-byte load a word (most words fit in one) through a strided uint64 view of
    the bytes, where polynomial hashing over every byte cost 27 us a text (docs/curation.md).
    """
    starts, ends = _word_bounds(separator)
    if not len(starts):
        return np.zeros(0, _U64), np.zeros(0, np.int64)
    lengths = ends - starts
    hashes = _read8(data, starts, lengths)
    long = np.flatnonzero(lengths > 8)
    offset = 8
    with np.errstate(over="ignore"):
        while len(long):  # the rare words over 8 bytes: 8 more bytes a round
            more = _read8(data, starts[long] + offset, lengths[long] - offset)
            hashes[long] = mix(hashes[long] * _GOLDEN + more)
            offset += 8
            long = long[lengths[long] > offset]
    return mix(hashes), _owners(data, starts, count)


def _read8(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Up to 8 bytes at each start as a little-endian uint64, zero past `lengths`."""
    # A uint64 at every byte offset (stride 1, unaligned): indexing it copies 8 bytes at once.
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    return words[starts] & _LOW_BYTES[np.minimum(lengths, 8)]


def _owners(data: np.ndarray, starts: np.ndarray, count: int) -> np.ndarray:
    """The index of the text each word belongs to (texts are NUL-separated, in order)."""
    ends = np.flatnonzero(data == 0)[:count]
    before = np.searchsorted(starts, ends)  # words before the end of each text
    return np.repeat(np.arange(count), np.diff(before, prepend=0))


def _characters(
    data: np.ndarray, separator: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """The normalized bytes of each text, words joined by one space (a token of its own)."""
    starts, ends = _word_bounds(separator)
    if not len(starts):
        return np.zeros(0, _U64), np.zeros(0, np.int64)
    word_owners = _owners(data, starts, count)
    lengths = ends - starts
    stream = data[~separator].astype(_U64) + _U64(1)
    owners = np.repeat(word_owners, lengths)
    between = np.flatnonzero(word_owners[:-1] == word_owners[1:])  # a next word, same text
    at = np.cumsum(lengths)[between]
    return np.insert(stream, at, _U64(33)), np.insert(owners, at, word_owners[between])


def _ngrams(tokens: np.ndarray, owners: np.ndarray, count: int, size: int) -> Shingles:
    """Hashes of every `size` consecutive tokens of one text, in text order."""
    counts = np.bincount(owners, minlength=count)
    full = max(len(tokens) - size + 1, 0)
    with np.errstate(over="ignore"):
        hashes = tokens[:full].copy()
        for offset in range(1, size):
            hashes *= _GOLDEN
            hashes += tokens[offset : offset + full]
    valid = owners[:full] == owners[size - 1 : size - 1 + full]
    hashes = mix(hashes[valid])
    per_text = np.maximum(counts - size + 1, 0)
    short = np.flatnonzero((counts > 0) & (counts < size))
    if len(short):  # each text shorter than one shingle is one shingle, in its place
        first = np.concatenate(([0], np.cumsum(counts)[:-1]))
        extra = [_whole(tokens[first[i] : first[i] + counts[i]]) for i in short]
        at = np.cumsum(per_text)[short]  # texts before `i` end there: insert at it
        hashes = np.insert(hashes, at, np.array(extra, dtype=_U64))
        per_text[short] = 1
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(per_text, out=offsets[1:])
    return Shingles(hashes, offsets)


def _whole(tokens: np.ndarray) -> np.uint64:
    """A text shorter than one shingle: all of its tokens as one shingle."""
    value = _U64(0)
    with np.errstate(over="ignore"):
        for token in tokens:
            value = value * _GOLDEN + token
        return mix(np.array([value], dtype=_U64))[0]


def similarities(shingles: Shingles, pairs: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """Exact Jaccard similarity of each pair (i, j) of texts of `shingles`, vectorized.

    Each text's shingles become keys (text << s | hash >> t) sorted once; a pair's intersection
    counts the keys of j, relabelled as i's, found among i's by a binary search. The hashes
    keep 64 - bits(texts) bits (44 for a million texts): a false match needs two different
    shingles of a pair to agree on all of them, about 1e-9 a pair.
    """
    keys, offsets = _set_keys(shingles)
    shift = _U64(64 - max(1, (len(offsets) - 1).bit_length()))
    low = (_U64(1) << shift) - _U64(1)
    sizes = np.diff(offsets)
    result = np.zeros(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), chunk):  # bounds the per-shingle buffers
        left, right = pairs[start : start + chunk, 0], pairs[start : start + chunk, 1]
        counts = sizes[right]
        positions = np.repeat(offsets[right] - np.cumsum(counts) + counts, counts)
        positions += np.arange(len(positions))
        queries = (keys[positions] & low) | (np.repeat(left, counts).astype(_U64) << shift)
        found = np.searchsorted(keys, queries)
        hit = keys[np.minimum(found, len(keys) - 1)] == queries
        owner = np.repeat(np.arange(len(left)), counts)
        common = np.bincount(owner[hit], minlength=len(left))
        union = sizes[left] + counts - common
        result[start : start + chunk] = np.where(union > 0, common / np.maximum(union, 1), 0.0)
    return result


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: numpy 2.3+'s hash-based unique is ~25x slower on 64-bit keys."""
    values = np.sort(values, axis=None)
    if not len(values):
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _set_keys(shingles: Shingles) -> tuple[np.ndarray, np.ndarray]:
    """Each text's distinct shingles as sorted keys (text, hash) and the offsets of each text."""
    count = len(shingles.offsets) - 1
    text_bits = _U64(max(1, count.bit_length()))
    with np.errstate(over="ignore"):
        keys = (shingles.owners().astype(_U64) << (_U64(64) - text_bits)) | (
            shingles.hashes >> text_bits
        )
    keys = sorted_unique(keys)
    offsets = np.searchsorted(keys >> (_U64(64) - text_bits), np.arange(count + 1, dtype=_U64))
    return keys, offsets.astype(np.int64)
