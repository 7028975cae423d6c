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
from exports.rows import ACCEPT, ACTIVE, AnnotationRecord, Completion, ItemRecord, Preference
from exports.tallies import TalliedRow, Tally

COMPLETION_FORMATS: dict[str, Callable[[Completion, str], Body]] = {
    "sft": formats.sft,
    "openai-sft": formats.openai_sft,
    "kto": formats.kto,
}


@dataclass
class Stats:
    dropped: Dropped
    guideline_versions: set[int | None] = field(default_factory=set)
    annotators: set[int] = field(default_factory=set)
    pairs: int = 0
    agreement_sum: float = 0.0
    unanimous: int = 0
    _last_annotators: str = ""
    _last_versions: str = ""

    def saw(self, annotations: tuple[AnnotationRecord, ...]) -> None:
        for annotation in annotations:
            self.guideline_versions.add(annotation.guideline_version)
            self.annotators.add(annotation.annotator_id)

    def saw_tallied(self, annotators: str, versions: str, unversioned: int) -> None:
        """`saw` for judgements counted by the database: the kept judgements' annotator ids and
        guideline versions, comma-separated, and how many had no version. Consecutive items
        usually share them, so a string seen just before is not parsed again."""
        if annotators != self._last_annotators:
            self._last_annotators = annotators
            self.annotators.update(map(int, annotators.split(",")))
        if versions and versions != self._last_versions:
            self._last_versions = versions
            self.guideline_versions.update(map(int, versions.split(",")))
        if unversioned:
            self.guideline_versions.add(None)

    def add_pair(self, pair: Preference) -> None:
        agreement = pair.meta.get("agreement")
        if agreement is not None:
            self.add_agreement(agreement)

    def add_agreement(self, agreement: float) -> None:
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
        # The annotation filters' rules in the order they are checked, item status aside.
        self.filter_rules = spec.filters.rules()[1:]

    @property
    def tallies(self) -> bool:
        """Whether this export needs only votes counted per item (`lines_of_tallied`): a
        majority over pairs, where no judgement is exported on its own."""
        return self.spec.pairs is not None and not self.spec.pairs.per_annotator

    def lines(self, item: ItemRecord) -> Iterator[tuple[str, bytes]]:
        """(split, JSON line) for each row the item gives."""
        kept = self._usable(item)
        if not kept:
            return
        split = self.spec.splitter.split_for(item.id, item.group)
        for line in self._lines(item, kept):
            yield split, line

    def lines_of_tallied(self, row: TalliedRow) -> Iterator[tuple[str, bytes]]:
        """`lines` for an item whose votes the database counted (`reading.read_tallied`): the
        same checks, in the same order, on counts instead of records, and for an unreviewed
        item (nearly all) the line built from the row's values, with no record in between."""
        pk, external_id, messages, metadata, status, group, texts, review, counts = row
        spec, dropped = self.spec, self.stats.dropped
        policy = spec.pairs
        if policy is None:
            raise ValueError("votes counted per item make pairs only")
        if status != ACTIVE:
            dropped.annotation(policies.ITEM_STATUS, counts[0])
            return
        rules = self.filter_rules
        if rules:
            for rule, count in zip(rules, counts[1 : 1 + len(rules)], strict=True):
                if count:
                    dropped.annotation(rule, count)
        kept, a, b, tie, both_bad, strength_a, strength_b, annotators, versions, unversioned = (
            counts[1 + len(rules) :]
        )
        if not kept:
            return
        # with_system keeps only role and content, which is all a line reads of a message.
        prompt = formats.with_system(messages, metadata) if "system" in metadata else messages
        if not formats.representable(prompt, spec.style):
            dropped.item(policies.NEEDS_CONVERSATIONAL)
            return
        self.stats.saw_tallied(annotators or "", versions or "", unversioned)
        tally = Tally(a, b, tie, both_bad, strength_a or 0, strength_b or 0)
        key = external_id or f"item-{pk}"
        if len(texts) != 2 or (review is not None and review.decision != ACCEPT):
            # Missing responses or a reviewer's decision: the policy on a record (rare).
            item = ItemRecord(pk, key, tuple(prompt), group, status, tuple(texts), review=review)
            pairs = policies.majority(item, tally, policy, dropped)
            if pairs:
                split = spec.splitter.split_for(pk, group)
                for pair in pairs:
                    self.stats.add_pair(pair)
                    for line in self._pair_lines(pair):
                        yield split, line
            return
        decision = policies.decide(tally, policy, dropped)
        if decision is None:
            return
        winner, agreement, strength = decision
        self.stats.add_agreement(agreement)
        split = spec.splitter.split_for(pk, group)
        first, second = texts
        chosen, rejected = (first, second) if winner == "a" else (second, first)
        meta = (
            ""
            if spec.bare
            else formats.majority_meta_json(pk, a, b, tie, both_bad, agreement, winner, strength)
        )
        for encoded in formats.pair_fields(
            key, prompt, chosen, rejected, strength, meta, spec.format, spec.style, spec.bare
        ):
            yield split, formats.encode(encoded)

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

    def _lines(self, item: ItemRecord, kept: tuple[AnnotationRecord, ...]) -> Iterator[bytes]:
        spec, dropped = self.spec, self.stats.dropped
        if spec.format == RAW:
            pairwise = spec.kind == PAIRWISE_KIND
            yield from (formats.encode(formats.raw(item, a, pairwise=pairwise)) for a in kept)
        elif spec.pairs is not None:
            for pair in policies.preferences(item, kept, spec.pairs, dropped):
                self.stats.add_pair(pair)
                yield from self._pair_lines(pair)
        elif spec.sft is not None:
            select = policies.labeled_completions if spec.format == "kto" else policies.completions
            for row in select(item, kept, spec.sft, dropped):
                yield formats.encode(self._completion_body(row))

    def _pair_lines(self, pair: Preference) -> Iterator[bytes]:
        spec = self.spec
        for row in formats.pair_rows(pair, spec.format, spec.style, bare=spec.bare):
            yield formats.encode(row)

    def _completion_body(self, row: Completion) -> Body:
        body = COMPLETION_FORMATS[self.spec.format](row, self.spec.style)
        return formats.envelope(body, key=row.key, meta=row.meta, bare=self.spec.bare)


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
