"""One item at a time: filters, then the policy, then the format, then the split. Pure.

The service feeds item records in item order and writes the encoded lines where they belong;
the pipeline keeps the counts that end up in the manifest. Nothing here holds more than one
item, so memory stays flat however large the project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from exports import formats, policies
from exports.formats import Body
from exports.options import PAIRWISE_KIND, RAW, ExportSpec
from exports.policies import Dropped
from exports.rows import ACTIVE, AnnotationRecord, Completion, ItemRecord, Preference

COMPLETION_FORMATS: dict[str, Callable[[Completion, str], Body]] = {
    "sft": formats.sft,
    "openai-sft": formats.openai_sft,
    "kto": formats.kto,
}
PAIR_FORMATS: dict[str, Callable[[Preference, str], Body]] = {
    "dpo": formats.dpo,
    "rm": formats.rm,
    "openai-dpo": formats.openai_dpo,
}


@dataclass
class Stats:
    dropped: Dropped
    guideline_versions: set[int | None] = field(default_factory=set)
    annotators: set[int] = field(default_factory=set)
    pairs: int = 0
    agreement_sum: float = 0.0
    unanimous: int = 0

    def saw(self, annotations: tuple[AnnotationRecord, ...]) -> None:
        for annotation in annotations:
            self.guideline_versions.add(annotation.guideline_version)
            self.annotators.add(annotation.annotator_id)

    def add_pair(self, pair: Preference) -> None:
        agreement = pair.meta.get("agreement")
        if agreement is not None:
            self.pairs += 1
            self.agreement_sum += agreement
            self.unanimous += agreement == 1

    def agreement(self) -> dict[str, Any] | None:
        """Agreement among the aggregated pairs exported; None when nothing was aggregated."""
        if not self.pairs:
            return None
        mean = round(self.agreement_sum / self.pairs, 4)
        return {"pairs": self.pairs, "mean_agreement": mean, "unanimous": self.unanimous}

    def versions(self) -> list[int | None]:
        """Guideline versions of the annotations used, None (no guideline) first."""
        return sorted(self.guideline_versions, key=lambda v: -1 if v is None else v)


class Pipeline:
    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec
        self.stats = Stats(dropped=_dropped_for(spec))

    def lines(self, item: ItemRecord) -> Iterator[tuple[str, bytes]]:
        """(split, JSON line) for each row the item gives."""
        kept = self._usable(item)
        if not kept:
            return
        split = self.spec.splitter.split_of(item.group)
        for body in self._bodies(item, kept):
            yield split, formats.encode(body)

    def _usable(self, item: ItemRecord) -> tuple[AnnotationRecord, ...]:
        dropped = self.stats.dropped
        if item.status != ACTIVE:
            dropped.annotation(policies.ITEM_STATUS, len(item.annotations))
            return ()
        kept = policies.filter_annotations(item.annotations, self.spec.filters, dropped)
        if kept and not formats.representable(item.prompt, self.spec.style):
            dropped.item(policies.NEEDS_CONVERSATIONAL)
            return ()
        self.stats.saw(kept)
        return kept

    def _bodies(self, item: ItemRecord, kept: tuple[AnnotationRecord, ...]) -> Iterator[Body]:
        spec, dropped = self.spec, self.stats.dropped
        if spec.format == RAW:
            pairwise = spec.kind == PAIRWISE_KIND
            yield from (formats.raw(item, a, pairwise=pairwise) for a in kept)
        elif spec.pairs is not None:
            for pair in policies.preferences(item, kept, spec.pairs, dropped):
                self.stats.add_pair(pair)
                yield from self._pair_bodies(pair)
        elif spec.sft is not None:
            select = policies.labeled_completions if spec.format == "kto" else policies.completions
            yield from map(self._completion_body, select(item, kept, spec.sft, dropped))

    def _pair_bodies(self, pair: Preference) -> Iterator[Body]:
        if self.spec.format == "kto":
            # KTO is unpaired: a pair gives the chosen answer as desirable, the other not.
            yield self._completion_body(_side(pair, pair.chosen, "chosen", desirable=True))
            yield self._completion_body(_side(pair, pair.rejected, "rejected", desirable=False))
            return
        body = PAIR_FORMATS[self.spec.format](pair, self.spec.style)
        yield formats.envelope(body, key=pair.key, meta=pair.meta, bare=self.spec.bare)

    def _completion_body(self, row: Completion) -> Body:
        body = COMPLETION_FORMATS[self.spec.format](row, self.spec.style)
        return formats.envelope(body, key=row.key, meta=row.meta, bare=self.spec.bare)


def _side(pair: Preference, text: str, name: str, *, desirable: bool) -> Completion:
    return Completion(f"{pair.key}/{name}", pair.prompt, text, pair.meta, desirable)


def _dropped_for(spec: ExportSpec) -> Dropped:
    """Every rule this export checks, at zero, in the order they are checked."""
    annotation_rules = list(spec.filters.rules())
    item_rules = [policies.NEEDS_CONVERSATIONAL] if spec.style == formats.STANDARD else []
    if spec.pairs is not None:
        pair_annotation_rules, pair_item_rules = spec.pairs.rules()
        annotation_rules += pair_annotation_rules
        item_rules += pair_item_rules
    if spec.sft is not None:
        annotation_rules += spec.sft.rules(labeled=spec.format == "kto")
    return Dropped.for_rules(annotation_rules, item_rules)
