"""`manage.py export --project SLUG --format dpo --output PATH`: training-ready JSON Lines."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from exports import services
from exports.errors import ExportError
from exports.formats import STYLES
from exports.models import Export
from exports.options import FORMATS, ExportOptions
from exports.policies import TIE_POLICIES
from exports.splits import parse_split
from exports.writing import STDOUT
from labeling.models import Project
from labeling.progress import progress_bar


class Command(BaseCommand):
    help = (
        "Export a project's annotations as training-ready JSON Lines: sft, kto, openai-sft "
        "(SFT projects), dpo, kto, rm, openai-dpo (pairwise projects) or raw (every "
        "annotation, either kind). Beside the data go a manifest.json (policy, counts, rows "
        "left out by each rule, SHA-256 of each file) and a README.md dataset card. Files are "
        "written atomically, from one consistent snapshot of the database; the same export "
        "on unchanged data gives byte-identical data files. See docs/exports.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        _output_arguments(parser)
        _pairwise_arguments(parser.add_argument_group("pairwise projects"))
        _sft_arguments(parser.add_argument_group("SFT projects"))
        _filter_arguments(parser.add_argument_group("filters (any format)"))

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f'no project with the slug "{options["project"]}"')
        streaming = options["output"] == STDOUT
        try:
            with progress_bar(self.stderr, unit=" annotations", desc="export") as progress:
                export = services.run_export(
                    project=project,
                    options=_export_options(options),
                    output=options["output"],
                    force=options["force"],
                    emit=self._emit() if streaming else None,
                    progress=progress,
                )
        except ExportError as error:
            raise CommandError(str(error)) from None
        except BrokenPipeError:
            # The reader went away (`| head`): the record says failed, and no traceback.
            _silence(self.stdout)
            raise CommandError("standard output was closed before the export finished") from None
        self.stdout.flush()
        # With the rows on stdout, the report goes to stderr so that it cannot mix with them.
        (self.stderr if streaming else self.stdout).write(_report(export))

    def _emit(self) -> Callable[[bytes], Any]:
        buffer: BinaryIO | None = getattr(self.stdout, "buffer", None)  # via OutputWrapper
        if buffer is not None:
            return buffer.write  # bytes as written: UTF-8 whatever the locale says
        return lambda line: self.stdout.write(line.decode(), ending="")


def _output_arguments(parser: CommandParser) -> None:
    parser.add_argument("--project", required=True, metavar="SLUG", help="the slug of the project")
    parser.add_argument("--format", required=True, choices=FORMATS, help="the row format")
    parser.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="a .jsonl file (NAME.manifest.json and NAME.README.md go beside it), a directory "
        '(train.jsonl, a file per split, manifest.json, README.md), or "-" for stdout',
    )
    parser.add_argument(
        "--style",
        choices=STYLES,
        help="conversational (default): prompts are message lists; standard: plain strings, "
        "for single-turn prompts without a system prompt (others are left out)",
    )
    parser.add_argument(
        "--bare", action="store_true", help="only the trainer's columns: no id, no meta"
    )
    parser.add_argument(
        "--split",
        action="append",
        type=_split,
        default=[],
        metavar="NAME=FRACTION",
        help="hold out a split, e.g. test=0.1 (repeatable); stable across re-exports, and "
        "duplicate prompts never straddle splits; needs a directory --output",
    )
    parser.add_argument("--force", action="store_true", help="replace existing output files")


def _pairwise_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--min-votes",
        type=int,
        metavar="N",
        help="judgements an item needs, ties and both-bad included, before its majority "
        "counts (default: the project's overlap)",
    )
    group.add_argument(
        "--min-agreement",
        type=float,
        metavar="F",
        help="share of the counted votes the winner needs, 0 to 1 (default 0.5; as many "
        "votes for A as for B never make a pair)",
    )
    group.add_argument(
        "--ties",
        choices=TIE_POLICIES,
        help="tie and both-bad votes: exclude (default: not counted), count-as-half (half a "
        "vote for each response), drop-item (leave the item out)",
    )
    group.add_argument(
        "--per-annotator",
        action="store_true",
        help="one row per judgement instead of one per item by majority",
    )


def _sft_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--min-rating",
        type=int,
        metavar="N",
        help="lowest accepted rating; for kto, the lowest desirable one (default: the lowest "
        "rating above the middle of the scale, 4 of 5)",
    )
    group.add_argument(
        "--blocking-flags",
        type=_names,
        metavar="FLAG,FLAG",
        help="responses with any of these flags are left out (default: all the project's "
        'flags; "" for none)',
    )
    group.add_argument(
        "--all-responses",
        action="store_true",
        help="every accepted response, not only the best-rated per prompt",
    )


def _filter_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--since",
        type=_moment,
        metavar="DATE",
        help="only annotations made at or after DATE (2025-01-31 or an ISO time; UTC)",
    )
    group.add_argument(
        "--guideline-version",
        type=int,
        metavar="N",
        help="only annotations made under guideline version N",
    )
    group.add_argument(
        "--exclude-annotator",
        action="append",
        default=[],
        metavar="USERNAME",
        help="leave out this annotator's work (repeatable)",
    )


def _silence(stream: Any) -> None:
    """Point a closed pipe at /dev/null, so that the exit's flush does not fail again."""
    try:
        fileno = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file: nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


def _export_options(options: dict[str, Any]) -> ExportOptions:
    return ExportOptions(
        format=options["format"],
        style=options["style"],
        bare=options["bare"],
        min_votes=options["min_votes"],
        min_agreement=options["min_agreement"],
        ties=options["ties"],
        per_annotator=options["per_annotator"],
        min_rating=options["min_rating"],
        blocking_flags=options["blocking_flags"],
        all_responses=options["all_responses"],
        since=options["since"],
        guideline_version=options["guideline_version"],
        exclude_annotators=tuple(options["exclude_annotator"]),
        splits=tuple(options["split"]),
    )


def _split(text: str) -> tuple[str, float]:
    try:
        return parse_split(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(sorted({name.strip() for name in text.split(",") if name.strip()}))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a date like 2025-01-31') from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def _report(export: Export) -> str:
    total = sum(export.counts.values())
    counts = ", ".join(f"{split} {rows}" for split, rows in export.counts.items())
    left_out = "; ".join(
        f"{unit}: " + ", ".join(f"{rule} {n}" for rule, n in rules.items() if n)
        for unit, rules in export.dropped.items()
        if any(rules.values())
    )
    where = "stdout" if export.path == STDOUT else export.path
    return f"Exported {total} rows ({counts}) to {where}; left out: {left_out or 'nothing'}."
