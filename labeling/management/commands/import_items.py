"""`manage.py import_items --project SLUG FILE`: import items from a JSON Lines or CSV file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Project
from labeling.progress import progress_bar
from labeling.services import imports

SHOWN_ERRORS = 50


class Command(BaseCommand):
    help = (
        "Import items into a project from a JSON Lines or CSV file (optionally gzip-compressed). "
        "If any line is bad, nothing is imported unless --skip-bad-lines is given; either way "
        "every bad line is listed with its number and what is wrong. Items already in the "
        "project (same content hash) are counted as duplicates and left out, so importing a "
        "file twice adds nothing. The format is described in docs/import-format.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "file", type=Path, help="a .jsonl, .json, .csv file, or any of them with .gz"
        )
        parser.add_argument(
            "--project", required=True, metavar="SLUG", help="the slug of the project to fill"
        )
        parser.add_argument(
            "--skip-bad-lines",
            action="store_true",
            help="import the good lines and list the bad ones, instead of importing nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = _project(options["project"])
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            with progress_bar(self.stderr, unit=" lines", desc="import") as progress:
                report = imports.import_path(
                    project=project,
                    path=path,
                    skip_bad_lines=options["skip_bad_lines"],
                    progress=progress,
                )
        except imports.ImportRejected as rejected:
            self._list_errors(rejected.report.errors, self.stderr.write)
            raise CommandError(_rejection(path, rejected)) from None
        self._print_report(path, project, report)

    def _print_report(self, path: Path, project: Project, report: imports.ImportReport) -> None:
        summary = f"{report.created} created, {report.duplicates} duplicates"
        if report.skipped:
            summary += f", {len(report.errors)} bad lines skipped"
        self.stdout.write(self.style.SUCCESS(f'Imported {path} into "{project.slug}": {summary}.'))
        self._list_errors(report.errors, self.stdout.write)

    def _list_errors(self, errors: list[tuple[int, str]], write: Callable[[str], Any]) -> None:
        for line, reason in errors[:SHOWN_ERRORS]:
            write(f"line {line}: {reason}")
        if len(errors) > SHOWN_ERRORS:
            write(f"... and {len(errors) - SHOWN_ERRORS} more")


def _project(slug: str) -> Project:
    try:
        return Project.objects.get(slug=slug)
    except Project.DoesNotExist:
        raise CommandError(f'no project with the slug "{slug}"') from None


def _rejection(path: Path, rejected: imports.ImportRejected) -> str:
    if not rejected.skippable:
        return f"{path}: {rejected}"
    count = len(rejected.report.errors)
    return (
        f"{path}: {count} bad line{'s' if count != 1 else ''}: nothing was imported; "
        "use --skip-bad-lines to import the good lines"
    )
