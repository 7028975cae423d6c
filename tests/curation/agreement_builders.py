"""Hand-built votes for the agreement tests: an assignment and an annotation per vote."""

from datetime import datetime, timedelta

from django.utils import timezone

from labeling.models import Annotation, Assignment

DAY_ONE = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.get_fixed_timezone(0))


def vote(project, item, user, *, choice="", swapped=False, strength=None, day=0, **fields):
    """One submitted lease and its annotation; `day` sets created_at to DAY_ONE + day days."""
    if choice in ("a", "b") and strength is None:
        strength = 2
    assignment = Assignment.objects.create(
        project=project,
        item=item,
        annotator=user,
        status=Assignment.Status.SUBMITTED,
        swapped=swapped,
        expires_at=timezone.now(),
    )
    annotation = Annotation.objects.create(
        assignment=assignment,
        project=project,
        item=item,
        annotator=user,
        choice=choice,
        strength=strength,
        **fields,
    )
    # auto_now_add ignores a value passed to create(): set the day afterwards.
    Annotation.objects.filter(pk=annotation.pk).update(created_at=DAY_ONE + timedelta(days=day))
    return annotation
