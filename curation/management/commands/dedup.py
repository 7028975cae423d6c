"""`python manage.py dedup --project SLUG [--full] [--batch-size N]`: a dedup run, in-process."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from curation.dedup import services
from curation.models import DedupRun
from labeling.models import Project
from labeling.progress import progress_bar


class Command(BaseCommand):
    help = "Find exact and near-duplicate items in a project (in this process, with progress)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="the project's slug")
        parser.add_argument("--full", action="store_true", help="sign every item again")
        parser.add_argument("--batch-size", type=int, default=services.BATCH_SIZE)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f'No project with the slug "{options["project"]}".')
        if DedupRun.objects.filter(project=project, status__in=DedupRun.LIVE).exists():
            raise CommandError("A dedup run of this project is in progress; try again later.")
        run = DedupRun.objects.create(
            project=project, trigger=DedupRun.Trigger.COMMAND, full=options["full"],
            batch_size=options["batch_size"],
        )  # fmt: skip
        with progress_bar(self.stderr, unit="item", desc="signing") as progress:
            run = services.run_in_process(run, progress)
        self.stdout.write(f"Run {run.pk}: {run.message}")
