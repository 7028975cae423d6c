"""Train/test splits that never move. Pure.

An item's split is chosen by hashing the project's slug with the item's prompt group: the
normalized hash of its conversation (system turns left out). The same item lands in the same
split on every re-export, whatever else was added, removed or filtered, and items that repeat a
prompt word for word (pairwise items with the same prompt and other responses, say) share one
split, so a test prompt never also appears in train. Hashing the group rather than the item id
needs no pass over the project first (streaming), and a group's split does not change when one
of its items is deleted or filtered out. Items in a near-duplicate group of the project's
latest dedup run (curation) key on the group's representative instead, so near duplicates do
not straddle splits either (`Splitter.near`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from exports.rows import Message
from labeling.importing import content_hash

TRAIN = "train"
SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def prompt_group(messages: Iterable[Message]) -> str:
    """Equal for conversations equal after normalization (NFC, whitespace), system aside."""
    turns = [
        {"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"
    ]
    return content_hash(turns, [])


def parse_split(text: str) -> tuple[str, float]:
    """ "test=0.1" -> ("test", 0.1); ValueError with a message a user can act on."""
    name, _, fraction = text.partition("=")
    name = name.strip()
    if not SPLIT_NAME.match(name) or name == TRAIN:
        raise ValueError(f'"{text}": name a split like test=0.1 (lowercase, not "{TRAIN}")')
    try:
        value = float(fraction)
    except ValueError:
        raise ValueError(f'"{text}": the fraction must be a number, like test=0.1') from None
    if not 0 < value < 1:
        raise ValueError(f'"{text}": the fraction must be between 0 and 1')
    return name, value


def check_splits(splits: Sequence[tuple[str, float]]) -> None:
    names = [name for name, _ in splits]
    if len(set(names)) != len(names):
        raise ValueError(f"a split is named twice: {', '.join(names)}")
    if sum(fraction for _, fraction in splits) >= 1:
        raise ValueError("the split fractions add up to 1 or more: leave some for train")


@dataclass(frozen=True)
class Splitter:
    """Splits take consecutive ranges of [0, 1) in the order given; train takes the rest."""

    salt: str
    splits: tuple[tuple[str, float], ...] = ()
    # item id -> the representative of its near-duplicate group (curation's latest dedup run)
    near: Mapping[int, int] = field(default_factory=dict, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return (TRAIN, *(name for name, _ in self.splits))

    def split_for(self, item_id: int, group: str) -> str:
        """The item's split: by its near-duplicate group if it has one, else its prompt's."""
        representative = self.near.get(item_id)
        return self.split_of(group if representative is None else f"near:{representative}")

    def split_of(self, group: str) -> str:
        if not self.splits:
            return TRAIN  # everything; no hash to compute
        point = bucket(self.salt, group)
        upper = 0.0
        for name, fraction in self.splits:
            upper += fraction
            if point < upper:
                return name
        return TRAIN


def bucket(salt: str, group: str) -> float:
    """A point in [0, 1), uniform over groups and fixed for (salt, group)."""
    digest = hashlib.sha256(f"{salt}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
