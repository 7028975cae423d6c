"""Agreement reports: read the votes, compute, store; the guard that runs one at a time.

Reading is the slow part at scale, so the votes come back as integers only (choices, criteria
and flags become codes in SQL), from ORM-built queries without joins, through PostgreSQL's
binary COPY where available: `reading` has the details.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import (
    Case,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    TextField,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from curation.agreement import reading, report, stats
from curation.agreement.report import MISSING, Schema, Votes
from curation.models import AgreementReport, AgreementState
from labeling.models import Annotation, Project
from labeling.services import gold

logger = logging.getLogger(__name__)

DEBOUNCE = timedelta(seconds=60)
# Longer than the task's hard time limit: a run still marked running after this has died.
STALE_AFTER = timedelta(minutes=15)
KEEP_REPORTS = 50


def _pairwise_columns(project: Project) -> tuple[dict[str, Any], dict[str, Any]]:
    """(integer columns, helper aliases) of a pairwise project: strength, choice, criteria."""
    columns: dict[str, Any] = {
        "strength_value": Coalesce("strength", Value(MISSING)),
        "choice_code": reading.Code(F("choice"), report.CHOICES),
    }
    for index, name in enumerate(project.criteria):
        # Cast: a key transform's own `=` compares JSON values, and "a" is not valid JSON.
        text = Cast(KeyTextTransform(name, "criteria"), TextField())
        columns[f"criterion_{index}"] = reading.Code(text, report.CRITERION_CHOICES)
    return columns, {}


def _sft_columns(project: Project) -> tuple[dict[str, Any], dict[str, Any]]:
    """(integer columns, helper aliases) of an SFT project: the rating and each flag."""
    columns: dict[str, Any] = {"rating_value": Coalesce("rating", Value(MISSING))}
    for index, flag in enumerate(project.flags):
        # Flags are stored as a sorted JSON list of known names: the quoted name appears in
        # its text exactly when the flag is set. JSON containment is not portable to SQLite.
        columns[f"flag_{index}"] = Case(
            When(Q(flags_text__contains=json.dumps(flag, ensure_ascii=False)), then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        )
    return columns, {"flags_text": Cast("flags", TextField())}


def load_votes(project: Project) -> tuple[Votes, int]:
    """The project's annotations (gold answers left out) as vote arrays, and the newest
    annotation id among them."""
    codes, aliases = (_pairwise_columns if project.is_pairwise else _sft_columns)(project)
    column = reading.read_annotations(project, codes, aliases)
    # Read after the annotations: a lease exists before its annotation, so every vote read
    # above finds its assignment in this later read.
    ids, states = reading.assignment_states(project)
    state = reading.lookup(column["lease"], ids, states)
    # Gold (honeypot) answers are graded against the gold label, not counted as agreement.
    counted = (state & reading.GOLD) == 0
    column = {name: values[counted] for name, values in column.items()}
    votes = Votes(
        items=column["item_key"],
        annotators=column["person"],
        guidelines=reading.guideline_numbers(column["guideline_key"]),
        created=column["created"],
        time_ms=column["time_ms"],
        **_kind_columns(project, column, state[counted]),
    )
    return votes, int(column["row_id"].max()) if counted.any() else 0


def _kind_columns(
    project: Project, column: dict[str, np.ndarray], state: np.ndarray
) -> dict[str, np.ndarray]:
    """The pairwise or SFT columns of `Votes`."""

    def prefixed(prefix: str) -> np.ndarray:
        """The columns whose names start with `prefix`, as one votes x columns matrix."""
        matching = [values for name, values in column.items() if name.startswith(prefix)]
        return np.stack(matching, axis=1) if matching else np.zeros((len(state), 0), np.int64)

    if not project.is_pairwise:
        return {"ratings": column["rating_value"], "flags": prefixed("flag_")}
    return {
        "choices": column["choice_code"],
        "strengths": column["strength_value"],
        "swapped": ((state & reading.SWAPPED) != 0).astype(np.int64),
        "criteria": prefixed("criterion_"),
    }


def schema_of(project: Project) -> Schema:
    return Schema(
        pairwise=project.is_pairwise,
        criteria=tuple(project.criteria),
        flags=tuple(project.flags),
        overlap=project.overlap,
        rating_scale=project.rating_scale,
    )


def display_names(annotator_ids: np.ndarray) -> dict[int, str]:
    ids = stats.dense_index(annotator_ids)[0].tolist()
    users = get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")
    return dict(users)


def gold_accuracy(project: Project, rows: list[dict[str, Any]]) -> None:
    """Fill `gold_accuracy` and `gold_items` of each annotator row from their gold answers.

    Graded by labeling's own rule (`gold.is_correct`), so the dashboard and the pausing of
    annotators never disagree. Gold answers are few (a small share of claims): Python is fine.
    """
    answers = Annotation.objects.filter(
        project_id=project.pk, assignment__gold=True, item__gold_label__isnull=False
    ).select_related("item__gold_label")
    scores: dict[int, list[int]] = {}
    for answer in answers:
        tally = scores.setdefault(answer.annotator_id, [0, 0])
        tally[0] += 1
        tally[1] += gold.is_correct(answer.item.gold_label, answer)
    for row in rows:
        answered, correct = scores.get(row["id"], (0, 0))
        row["gold_items"] = answered
        row["gold_accuracy"] = correct / answered if answered else None


def compute(project: Project) -> tuple[dict[str, Any], int, int]:
    """(report data, annotations, newest annotation id) for a project. Reads only."""
    votes, last_id = load_votes(project)
    data = report.build(votes, schema_of(project), display_names(votes.annotators))
    gold_accuracy(project, data["per_annotator"])
    return data, len(votes), last_id


def refresh(*, project: Project, force: bool = False) -> AgreementReport | None:
    """Recompute and store a project's report. Runs are one at a time per project and at least
    a minute apart (unless `force`); None when the guard says not now. Reruns are harmless."""
    if not _claim(project.pk, force=force):
        logger.info("agreement.skipped", extra={"project_id": project.pk})
        return None
    started = time.perf_counter()
    try:
        data, count, last_id = compute(project)
        duration_ms = int((time.perf_counter() - started) * 1000)
        return _store(project, data, count, last_id, duration_ms)
    except Exception as error:
        # The store's transaction rolled back: free the guard, and let the failed run not
        # count for the debounce, so the task's retry (or the next beat) runs at once.
        _release(project.pk, error=f"{type(error).__name__}: {error}", failed=True)
        raise


def _claim(project_id: int, *, force: bool) -> bool:
    """Mark the project's run as started by a conditional UPDATE; False if another holds it.

    The UPDATE commits on its own (autocommit), so a second worker sees it at once; only one
    of two concurrent UPDATEs of the same row can match the condition.
    """
    AgreementState.objects.get_or_create(project_id=project_id)
    now = timezone.now()
    free = Q(running_since__isnull=True) | Q(running_since__lt=now - STALE_AFTER)
    rows = AgreementState.objects.filter(free, project_id=project_id)
    if not force:
        rows = rows.filter(Q(started_at__isnull=True) | Q(started_at__lte=now - DEBOUNCE))
    return rows.update(running_since=now, started_at=now) == 1


def _release(
    project_id: int, *, error: str = "", last_id: int | None = None, failed: bool = False
) -> None:
    fields: dict[str, Any] = {
        "running_since": None,
        "finished_at": timezone.now(),
        "last_error": error,
    }
    if failed:
        fields["started_at"] = None
    if last_id is not None:
        fields["last_annotation_id"] = last_id
    AgreementState.objects.filter(project_id=project_id).update(**fields)


@transaction.atomic
def _store(
    project: Project, data: dict[str, Any], count: int, last_id: int, duration_ms: int
) -> AgreementReport:
    stored = AgreementReport.objects.create(
        project=project,
        annotations=count,
        last_annotation_id=last_id,
        duration_ms=duration_ms,
        data=data,
    )
    _release(project.pk, last_id=last_id)
    old = AgreementReport.objects.filter(project=project).values_list("pk", flat=True)
    AgreementReport.objects.filter(pk__in=list(old[KEEP_REPORTS:])).delete()
    return stored


def due_projects() -> list[int]:
    """Projects with annotations newer than their last report, not running, not run within
    the last minute: what the periodic beat task enqueues."""
    now = timezone.now()
    recent = now - DEBOUNCE
    newer = Annotation.objects.filter(project=OuterRef("pk"), pk__gt=OuterRef("mark"))
    # A run whose worker died keeps running_since; past STALE_AFTER it is free again, as
    # _claim sees it, or the project would never be refreshed by the beat again.
    free = Q(agreement_state__running_since__isnull=True) | Q(
        agreement_state__running_since__lt=now - STALE_AFTER
    )
    projects = (
        Project.objects.annotate(mark=Coalesce("agreement_state__last_annotation_id", Value(0)))
        .filter(Exists(newer))
        .filter(free)
        .filter(
            Q(agreement_state__started_at__isnull=True) | Q(agreement_state__started_at__lte=recent)
        )
    )
    return list(projects.order_by("pk").values_list("pk", flat=True))


def latest(project: Project) -> AgreementReport | None:
    return AgreementReport.objects.filter(project=project).order_by("-created_at", "-pk").first()
