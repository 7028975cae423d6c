"""The manifest and the dataset card written next to an export's data. Pure.

The card is made only of what the data depends on (policy, counts, a sample row), so an export
re-run on unchanged data gives a byte-identical card; what changes on every run (when, which
export record, the tool version) goes into the manifest only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exports import policies
from exports.options import PAIRWISE_KIND, RAW, ExportSpec, ProjectFacts
from exports.pipeline import Stats

SAMPLE_TEXT_LIMIT = 300
FORMAT_TEXT = {
    "sft": "Supervised fine-tuning examples: a prompt and an accepted response",
    "dpo": "Preference pairs (prompt, chosen, rejected) for DPO",
    "kto": "Unpaired examples labeled desirable (true) or undesirable (false) for KTO",
    "rm": "Preference pairs with a margin for reward-model training",
    "openai-sft": "Chat examples in OpenAI's supervised fine-tuning format",
    "openai-dpo": "Preference pairs in OpenAI's preference fine-tuning format",
    "raw": "Every annotation as it was made, for analysis",
}
TIES_TEXT = {
    policies.TIES_EXCLUDE: "are not counted",
    policies.TIES_COUNT_AS_HALF: "count half for each response",
    policies.TIES_DROP_ITEM: "leave the whole item out",
}


@dataclass(frozen=True)
class Outcome:
    """What an export wrote: rows per split, file facts, and the first row."""

    counts: dict[str, int]  # split -> rows
    file_names: dict[str, str]  # split -> file name; empty when streamed
    files: dict[str, dict[str, Any]]  # file name -> sha256, rows, bytes
    sample: bytes | None


def manifest(
    spec: ExportSpec,
    project: ProjectFacts,
    stats: Stats,
    outcome: Outcome,
    volatile: dict[str, Any],
) -> bytes:
    """manifest.json: everything recorded about the export, `volatile` (when, who) included."""
    document = {
        "project": {"slug": project.slug, "kind": project.kind},
        **spec.describe(),
        "counts": outcome.counts,
        "files": outcome.files,
        "dropped": stats.dropped.as_dict(),
        "guideline_versions": stats.versions(),
        "annotators": len(stats.annotators),
        "agreement": stats.agreement(),
        **volatile,
    }
    return (json.dumps(document, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode()


def card(
    spec: ExportSpec, project: ProjectFacts, name: str, stats: Stats, outcome: Outcome
) -> bytes:
    """README.md: a dataset card with Hugging Face `configs` metadata naming the splits."""
    title = " ".join(name.split())
    parts = [
        _front_matter(outcome.file_names),
        f"# {title}: `{spec.format}` export\n",
        f"{FORMAT_TEXT[spec.format]}, exported from the {project.kind} project "
        f"`{project.slug}` by annotate. JSON Lines, UTF-8, one row a line; the manifest beside "
        "this card holds each file's SHA-256.\n",
        "## How it was labeled\n",
        _labeling(project, stats),
        "## How it was aggregated\n",
        "".join(f"- {line}\n" for line in _aggregation(spec, project)),
        "## Counts\n",
        _counts(outcome.files),
        "## Left out\n",
        _dropped(stats),
        "## Sample row\n",
        _sample(outcome.sample),
    ]
    return "\n".join(parts).encode()


def _front_matter(file_names: dict[str, str]) -> str:
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split, file_name in file_names.items():
        # JSON strings are valid YAML scalars: a file name cannot break the metadata.
        lines += [f"  - split: {json.dumps(split)}", f"    path: {json.dumps(file_name)}"]
    return "\n".join([*lines, "---", ""])


def _labeling(project: ProjectFacts, stats: Stats) -> str:
    if project.kind == PAIRWISE_KIND:
        task = (
            "Annotators compared two responses to each prompt, shown in random order, and "
            "chose the better one (or a tie, or both bad) with a strength from 1 to 3."
        )
    else:
        task = (
            "Annotators wrote or edited a response to each prompt and rated it from 1 to "
            f"{project.rating_scale}, flagging problems ({', '.join(project.flags) or 'none'})."
        )
    versions = ", ".join("none" if v is None else str(v) for v in stats.versions())
    return (
        f"{task} Annotations wanted per item: {project.overlap}. After the filters: "
        f"{len(stats.annotators)} annotators, guideline versions {versions or 'none'}.\n"
    )


def _aggregation(spec: ExportSpec, project: ProjectFacts) -> Iterator[str]:
    yield from _policy_lines(spec, project)
    yield from _filter_lines(spec)
    for split, fraction in spec.splitter.splits:
        yield (
            f"Split `{split}`: {fraction:.0%} of the prompts, chosen by a hash of the project "
            "and the normalized prompt, so duplicate prompts share a split."
        )


def _policy_lines(spec: ExportSpec, project: ProjectFacts) -> Iterator[str]:
    if spec.format == RAW:
        yield "None: every annotation is a row."
    if spec.pairs is not None and spec.pairs.per_annotator:
        yield "Every judgement is a pair of its own (no vote)."
        yield f"Ties and both-bad votes {TIES_TEXT[spec.pairs.ties]}."
    elif spec.pairs is not None:
        yield (
            f"Per item with at least {spec.pairs.min_votes} judgements, the majority of the "
            f"counted votes decides, with an agreement of at least "
            f"{spec.pairs.min_agreement:.0%}; as many votes for A as for B give no pair."
        )
        yield f"Ties and both-bad votes {TIES_TEXT[spec.pairs.ties]}."
        yield "The margin is the mean strength (1 to 3) of the votes for the chosen response."
    if spec.sft is not None:
        yield from _sft_lines(spec.format, spec.sft, project.rating_scale)


def _sft_lines(format_name: str, policy: policies.SftPolicy, scale: int) -> Iterator[str]:
    flags = ", ".join(sorted(policy.blocking_flags)) or "none"
    yield f"Responses with a blocking flag ({flags}) or no rating are left out."
    if format_name == "kto":
        yield f"Label true for a rating of at least {policy.min_rating} of {scale}, else false."
    elif policy.all_responses:
        yield f"Every response rated at least {policy.min_rating} of {scale}."
    else:
        yield (
            f"Per prompt, the best-rated response rated at least {policy.min_rating} of "
            f"{scale} (on equal ratings, the newest)."
        )


def _filter_lines(spec: ExportSpec) -> Iterator[str]:
    yield "Items marked duplicate or filtered are left out."
    filters = spec.filters
    if filters.since is not None:
        yield f"Only annotations made since {filters.since.isoformat()}."
    if filters.guideline_version is not None:
        yield f"Only annotations made under guideline version {filters.guideline_version}."
    if filters.excluded_annotators:
        yield f"Annotations of {len(filters.excluded_annotators)} annotators are left out."


def _counts(files: dict[str, dict[str, Any]]) -> str:
    rows = [f"| `{name}` | {facts['rows']} |" for name, facts in files.items()]
    return "\n".join(["| file | rows |", "|---|---|", *rows, ""])


def _dropped(stats: Stats) -> str:
    dropped = stats.dropped.as_dict()
    rows = [
        f"| {unit} | `{rule}` | {count} |"
        for unit, rules in (("annotations", dropped["annotations"]), ("items", dropped["items"]))
        for rule, count in rules.items()
    ]
    return "\n".join(["| counted in | rule | left out |", "|---|---|---|", *rows, ""])


def _sample(line: bytes | None) -> str:
    if line is None:
        return "(no rows)\n"
    text = json.dumps(_shorten(json.loads(line)), ensure_ascii=False, sort_keys=True, indent=2)
    # A fence longer than any run of backticks in the row, so the row cannot close it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}json\n{text}\n{fence}\n"


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > SAMPLE_TEXT_LIMIT:
        return value[:SAMPLE_TEXT_LIMIT] + "…"
    if isinstance(value, list):
        return [_shorten(v) for v in value]
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    return value
