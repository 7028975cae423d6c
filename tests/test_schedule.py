"""The beat schedule and the routes: every periodic task exists and runs on the right queue."""

import pytest
from django.conf import settings

from annotate.celery import app

app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them


@pytest.mark.parametrize("name", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_every_beat_entry_names_a_registered_task(name):
    assert settings.CELERY_BEAT_SCHEDULE[name]["task"] in app.tasks


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("labeling.tasks.release_expired_leases", "default"),
        ("labeling.tasks.requeue_abandoned_imports", "default"),
        ("exports.tasks.run_export_job", "default"),
        ("exports.tasks.requeue_abandoned_exports", "default"),
        ("curation.dedup.tasks.resume_dedup_runs", "cpu"),
        ("curation.agreement.tasks.enqueue_due_agreement", "cpu"),
        # The reaper of dead trainings must not queue behind a training on the GPU worker.
        ("finetune.tasks.fail_stale_runs", "default"),
        ("finetune.tasks.run_finetune", "gpu"),
    ],
)
def test_tasks_are_routed_to_their_queue(task, queue):
    assert task in app.tasks
    assert app.amqp.router.route({}, task)["queue"].name == queue
