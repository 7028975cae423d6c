"""What a user asks for (`ExportOptions`) and what an export then does (`ExportSpec`). Pure.

Options left unset take the project's defaults here, once, and the resolved spec is what gets
recorded, so an export always says the thresholds it used. An option that cannot apply (a
pairwise option on an SFT project, `--style standard` for an OpenAI format...) is an error
rather than silently ignored: a user who typed it expected it to change something.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from exports import policies
from exports.errors import InvalidOptions
from exports.formats import CONVERSATIONAL, STANDARD, STYLES
from exports.policies import Filters, PairPolicy, SftPolicy
from exports.splits import Splitter, check_splits

SFT_KIND, PAIRWISE_KIND = "sft", "pairwise"  # Project.Kind values
RAW = "raw"
OPENAI_FORMATS = ("openai-sft", "openai-dpo")
FORMATS_BY_KIND = {
    SFT_KIND: ("sft", "kto", "openai-sft", RAW),
    PAIRWISE_KIND: ("dpo", "kto", "rm", "openai-dpo", RAW),
}
FORMATS = ("sft", "dpo", "kto", "rm", "openai-sft", "openai-dpo", RAW)
PAIR_OPTIONS = ("min_votes", "min_agreement", "ties", "per_annotator")
SFT_OPTIONS = ("min_rating", "blocking_flags", "all_responses")


@dataclass(frozen=True)
class ProjectFacts:
    slug: str
    kind: str
    overlap: int
    rating_scale: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ExportOptions:
    """As given by a user: None (or False) means "not given", and the default applies."""

    format: str
    style: str | None = None
    bare: bool = False
    min_votes: int | None = None
    min_agreement: float | None = None
    ties: str | None = None
    per_annotator: bool = False
    min_rating: int | None = None
    blocking_flags: tuple[str, ...] | None = None
    all_responses: bool = False
    since: datetime | None = None
    guideline_version: int | None = None
    exclude_annotators: tuple[str, ...] = ()
    splits: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ExportSpec:
    format: str
    kind: str
    style: str
    bare: bool
    splitter: Splitter
    filters: Filters = field(default_factory=Filters)
    pairs: PairPolicy | None = None
    sft: SftPolicy | None = None

    def describe(self) -> dict[str, Any]:
        """The resolved policy and filters, as recorded in the Export row and the manifest."""
        return {
            "format": self.format,
            "style": None if self.format == RAW else self.style,
            "bare": self.bare,
            "policy": _policy(self),
            "filters": {
                "item_status": "active",
                "since": self.filters.since.isoformat() if self.filters.since else None,
                "guideline_version": self.filters.guideline_version,
                "excluded_annotators": sorted(self.filters.excluded_annotators),
            },
            "split": [{"name": n, "fraction": f} for n, f in self.splitter.splits],
        }


def _policy(spec: ExportSpec) -> dict[str, Any]:
    if spec.pairs is not None:
        pairs = spec.pairs
        return {
            "min_votes": pairs.min_votes,
            "min_agreement": pairs.min_agreement,
            "ties": pairs.ties,
            "per_annotator": pairs.per_annotator,
        }
    if spec.sft is not None:
        return {
            "min_rating": spec.sft.min_rating,
            "blocking_flags": sorted(spec.sft.blocking_flags),
            "all_responses": spec.sft.all_responses,
        }
    return {}


def resolve(
    options: ExportOptions, project: ProjectFacts, excluded_annotators: frozenset[int]
) -> ExportSpec:
    """Check the options against the project and fill in the defaults."""
    problems = list(_problems(options, project))
    if problems:
        raise InvalidOptions("; ".join(problems), by_field(problems))
    filters = Filters(options.since, options.guideline_version, excluded_annotators)
    aggregated = options.format != RAW
    return ExportSpec(
        format=options.format,
        kind=project.kind,
        style=options.style or CONVERSATIONAL,
        bare=options.bare or options.format in OPENAI_FORMATS,
        splitter=Splitter(project.slug, options.splits),
        filters=filters,
        pairs=_pairs(options, project) if aggregated and project.kind == PAIRWISE_KIND else None,
        sft=_sft(options, project) if aggregated and project.kind == SFT_KIND else None,
    )


# Command-line flags whose option has another name.
FIELD_OF_FLAG = {"exclude_annotator": "exclude_annotators", "split": "splits"}
FLAG = re.compile(r"^--([a-z-]+)")


def by_field(problems: list[str]) -> dict[str, list[str]]:
    """Problems by the option they name first (each one starts with its `--flag`)."""
    fields: dict[str, list[str]] = {}
    for problem in problems:
        match = FLAG.match(problem)
        name = match.group(1).replace("-", "_") if match else "non_field_errors"
        fields.setdefault(FIELD_OF_FLAG.get(name, name), []).append(problem)
    return fields


def to_json(options: ExportOptions) -> dict[str, Any]:
    """The options as a job stores them (JSON): what was given, nothing resolved yet."""
    data = asdict(options)
    data["since"] = options.since.isoformat() if options.since else None
    return data


def from_json(data: dict[str, Any]) -> ExportOptions:
    """The inverse of `to_json`."""
    values = dict(data)
    values["since"] = datetime.fromisoformat(data["since"]) if data.get("since") else None
    flags = data.get("blocking_flags")
    values["blocking_flags"] = None if flags is None else tuple(flags)
    values["exclude_annotators"] = tuple(data.get("exclude_annotators", ()))
    values["splits"] = tuple((name, fraction) for name, fraction in data.get("splits", ()))
    return ExportOptions(**values)


def default_min_rating(rating_scale: int) -> int:
    """The lowest rating above the middle of the scale: 4 of 5, 3 of 4, 6 of 10."""
    return (rating_scale + 1) // 2 + 1


def _pairs(options: ExportOptions, project: ProjectFacts) -> PairPolicy:
    return PairPolicy(
        min_votes=project.overlap if options.min_votes is None else options.min_votes,
        min_agreement=0.5 if options.min_agreement is None else options.min_agreement,
        ties=options.ties or policies.TIES_EXCLUDE,
        per_annotator=options.per_annotator,
    )


def _sft(options: ExportOptions, project: ProjectFacts) -> SftPolicy:
    flags = project.flags if options.blocking_flags is None else options.blocking_flags
    rating = options.min_rating
    return SftPolicy(
        min_rating=default_min_rating(project.rating_scale) if rating is None else rating,
        blocking_flags=frozenset(flags),
        all_responses=options.all_responses,
    )


def _problems(options: ExportOptions, project: ProjectFacts) -> Iterator[str]:
    if options.format not in FORMATS_BY_KIND[project.kind]:
        formats = ", ".join(FORMATS_BY_KIND[project.kind])
        yield f"--format {options.format} does not fit a {project.kind} project (use {formats})"
        return
    yield from _not_applicable(options, project.kind)
    yield from _bad_values(options, project)
    try:
        check_splits(options.splits)
    except ValueError as error:
        yield f"--split: {error}"


def _given(options: ExportOptions, name: str) -> bool:
    return getattr(options, name) not in (None, False)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _not_applicable(options: ExportOptions, kind: str) -> Iterator[str]:
    for names, reason in _inapplicable(options, kind):
        for name in names:
            if _given(options, name):
                yield f"{_flag(name)} {reason}"


def _inapplicable(options: ExportOptions, kind: str) -> Iterator[tuple[tuple[str, ...], str]]:
    if options.format == RAW:
        yield (*PAIR_OPTIONS, *SFT_OPTIONS, "style", "bare"), "does not apply to raw exports"
        return
    if kind == SFT_KIND:
        yield PAIR_OPTIONS, "applies to pairwise projects only"
    else:
        yield SFT_OPTIONS, "applies to SFT projects only"
    if options.format == "kto" and kind == SFT_KIND:
        yield ("all_responses",), "is implied: KTO on an SFT project exports every response"
    if options.format in OPENAI_FORMATS:
        yield ("style",), "does not apply: OpenAI formats are conversational"
    if options.per_annotator:
        yield ("min_votes", "min_agreement"), "does not apply with --per-annotator"


def _bad_values(options: ExportOptions, project: ProjectFacts) -> Iterator[str]:
    if options.style not in (None, *STYLES):
        yield f"--style must be {CONVERSATIONAL} or {STANDARD}"
    if options.ties not in (None, *policies.TIE_POLICIES):
        yield f"--ties must be one of {', '.join(policies.TIE_POLICIES)}"
    if options.per_annotator and options.ties == policies.TIES_COUNT_AS_HALF:
        yield "--ties count-as-half needs votes to aggregate; not with --per-annotator"
    if options.min_votes is not None and options.min_votes < 1:
        yield "--min-votes must be at least 1"
    if options.min_agreement is not None and not 0 <= options.min_agreement <= 1:
        yield "--min-agreement is a fraction from 0 to 1"
    if options.min_rating is not None and not 1 <= options.min_rating <= project.rating_scale:
        yield f"--min-rating must be from 1 to {project.rating_scale}, the project's scale"
    unknown = sorted(set(options.blocking_flags or ()) - set(project.flags))
    if unknown:
        yield f"--blocking-flags: the project has no flag {', '.join(unknown)}"
    if options.since is not None and options.since.tzinfo is None:
        yield "--since needs a time zone (a naive time is ambiguous)"
    if options.guideline_version is not None and options.guideline_version < 1:
        yield "--guideline-version must be at least 1"
