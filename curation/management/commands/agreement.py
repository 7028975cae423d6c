"""`manage.py agreement --project SLUG [--json]`: recompute a project's agreement, print it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.agreement import services
from labeling.models import Project


class Command(BaseCommand):
    help = "Recompute a project's agreement report now, store it and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="the project's slug")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with the slug {options['project']!r}")
        # force: on demand skips the debounce; a run already in progress still wins.
        report = services.refresh(project=project, force=True)
        if report is None:
            raise CommandError("another agreement run for this project is in progress; retry")
        if options["json"]:
            self.stdout.write(json.dumps(report.data, indent=2, sort_keys=True))
        else:
            self.stdout.write("\n".join(text_lines(report.data)))


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def text_lines(data: dict[str, Any]) -> list[str]:
    """A plain-text summary: overall, per version, per annotator."""
    lines = [
        f"{data['annotations']} annotations on {data['items']} items by "
        f"{data['annotators']} annotators ({data['kind']})"
    ]
    sections = [("all", data["overall"])] + [
        ("no version" if s["version"] is None else f"v{s['version']}", s)
        for s in data["by_guideline"]
    ]
    for label, section in sections:
        values = {
            k: v for k, v in section.items() if k != "version" and isinstance(v, float | None)
        }
        lines.append(f"{label}: " + ", ".join(f"{k} {_number(v)}" for k, v in values.items()))
    for person in data["per_annotator"]:
        bias = (
            f", left {person['left']} right {person['right']} p {person['position_p_value']:.4f}"
            if "left" in person
            else ""
        )
        lines.append(
            f"  {person['name']}: {person['items']} items, majority agreement "
            f"{_number(person['agreement_with_majority'])}, median "
            f"{person['median_time_ms']:.0f} ms{bias}"
        )
    return lines
