"""A real gpu-queue worker process trains the tiny model on a real export, end to end.

The web side (the API) queues runs; a `celery worker --queues gpu,default` subprocess claims
them and trains on CPU. On the embedded defaults the broker is the filesystem transport; with
REDIS_URL set (CI's second pass, on PostgreSQL) it is Redis. The model folder sits in the
default models directory, DATA_DIR/models, which the worker shares through DATA_DIR.
"""

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from finetune import services, tasks
from finetune.models import FinetuneRun
from labeling.models import Role
from tests.conftest import require_redis
from tests.exports.builders import answer, export, pair_item, vote
from tests.factories import ItemFactory, MembershipFactory, UserFactory
from tests.finetune.conftest import tiny_model_dir  # noqa: F401 - a session fixture

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-integration"


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _start_worker(database_url: str) -> subprocess.Popen:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "OMP_NUM_THREADS": "1",  # two cores are shared by the whole machine
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "annotate", "worker", "--pool", "solo",
        "--queues", "gpu,default", "--concurrency", "1", "--prefetch-multiplier", "1",
        "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603 - our own command line


@pytest.fixture(scope="module")
def worker(django_db_setup, django_db_blocker):
    if os.environ.get("REDIS_URL"):
        require_redis()
    with django_db_blocker.unblock():
        process = _start_worker(_database_url())
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def model(tiny_model_dir):  # noqa: F811 - the fixture imported above
    target = Path(settings.DATA_DIR) / "models" / MODEL
    shutil.copytree(tiny_model_dir, target, dirs_exist_ok=True)
    return target


@pytest.fixture
def dpo_export(pairwise_project, tmp_path):
    """A real dpo export of 8 pairs, each judged "A" twice, written by the export service."""
    judges = [UserFactory(username=f"judge{n}") for n in (1, 2)]
    for user in judges:
        MembershipFactory(user=user, project=pairwise_project, role=Role.ANNOTATOR)
    for n in range(8):
        item = pair_item(pairwise_project, f"q{n}", f"Is {n} even?")
        for user in judges:
            vote(item, user, "a", minutes=n)
    return export(pairwise_project, f"{tmp_path}/dpo/", "dpo")


@pytest.fixture
def sft_export(sft_project, tmp_path):
    """A real sft export of 8 answers rated 5, written by the export service."""
    writer = UserFactory(username="writer")
    MembershipFactory(user=writer, project=sft_project, role=Role.ANNOTATOR)
    for n in range(8):
        item = ItemFactory(project=sft_project, external_id=f"s{n}", prompt=f"Add {n} and {n}.")
        answer(item, writer, f"{n} + {n} = {2 * n}.", rating=5, minutes=n)
    return export(sft_project, f"{tmp_path}/sft/", "sft")


def _launch(client, project, export_id: int, **settings_) -> int:
    body = {"export": export_id, "method": "dpo", "base_model": MODEL, **settings_}
    url = reverse("finetune-api:run-list", kwargs={"slug": project.slug})
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _wait_for(run_id: int, done, timeout: float = 240) -> FinetuneRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = FinetuneRun.objects.get(pk=run_id)
        if done(run):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} is still {run.status} after {timeout} s: {run.logs}")


SMALL = {"max_steps": 3, "batch_size": 2, "max_length": 64, "rank": 4, "alpha": 8}


def test_a_killed_worker_leaves_its_run_failed_never_running(
    client, django_db_setup, transactional_db, pairwise_project, queue_admin, model, dpo_export
):
    """A worker takes a long run and is SIGKILLed; the reaper fails the run.

    First in the module and without the module's worker, so that no other worker can take the
    run (with Redis, even a stopped worker's pending BRPOP would receive it).
    """
    if os.environ.get("REDIS_URL"):
        require_redis()
    client.force_login(queue_admin)
    doomed = _start_worker(_database_url())
    try:
        run_id = _launch(client, pairwise_project, dpo_export.pk, **SMALL | {"max_steps": 100000})
        _wait_for(run_id, lambda r: r.step > 0)
    finally:
        doomed.kill()
        doomed.wait(timeout=30)
    later = timezone.now() + services.stale_after() + timedelta(seconds=1)
    assert services.fail_stale_runs(now=later) == 1
    run = FinetuneRun.objects.get(pk=run_id)
    assert (run.status, run.error) == ("failed", services.STALE_MESSAGE)
    # A redelivery of its message (acks_late) finds the run failed and trains nothing.
    tasks.run_finetune(run_id)
    assert FinetuneRun.objects.get(pk=run_id).status == "failed"


def test_a_dpo_run_trains_the_tiny_model_to_an_adapter(
    client, worker, transactional_db, pairwise_project, queue_admin, model, dpo_export
):
    client.force_login(queue_admin)
    run = _wait_for(
        _launch(client, pairwise_project, dpo_export.pk, **SMALL), lambda r: r.is_finished
    )
    assert (run.status, run.error) == ("succeeded", "")
    assert (run.step, run.total_steps, run.progress) == (3, 3, 1.0)
    assert run.device == "cpu" or run.device.startswith("cuda:")
    adapter = Path(run.adapter_path)
    assert adapter == Path(settings.DATA_DIR).resolve() / "finetune" / str(run.pk) / "adapter"
    assert sorted(p.name for p in adapter.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors",
    ]  # fmt: skip
    assert Path(run.report_path) == adapter.parent / "training_report.json"
    assert Path(run.report_path).is_file()
    assert [point["step"] for point in run.metrics][-1] == 3
    assert "rewards/accuracies" in run.metrics[-1]
    page = client.get(
        reverse("finetune:run", kwargs={"slug": pairwise_project.slug, "pk": run.pk}),
        headers={"HX-Request": "true"},
    )
    assert page.status_code == 286  # finished: htmx stops polling


def test_a_running_run_is_cancelled_from_the_api(
    client, worker, transactional_db, pairwise_project, queue_admin, model, dpo_export
):
    client.force_login(queue_admin)
    run_id = _launch(client, pairwise_project, dpo_export.pk, **SMALL | {"max_steps": 100000})
    _wait_for(run_id, lambda r: r.step > 0)
    url = reverse("finetune-api:run-cancel", kwargs={"slug": pairwise_project.slug, "pk": run_id})
    assert client.post(url).json()["cancel_requested"] is True
    run = _wait_for(run_id, lambda r: r.is_finished)
    assert (run.status, run.error, run.adapter_path) == ("cancelled", "Cancelled on request.", "")
    assert 0 < run.step < 100000
    assert not (Path(settings.DATA_DIR).resolve() / "finetune" / str(run_id) / "adapter").exists()


def test_the_command_waits_for_an_sft_run(worker, transactional_db, model, sft_export, capsys):
    call_command(
        "finetune", "--export", str(sft_export.pk), "--method", "sft", "--base-model", MODEL,
        "--max-steps", "2", "--batch-size", "2", "--max-length", "64", "--rank", "4", "--wait",
    )  # fmt: skip
    run = FinetuneRun.objects.get(export=sft_export)
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        f"Queued finetune run {run.pk} (sft on export {sft_export.pk}).",
        f"Run {run.pk} succeeded: adapter in {run.adapter_path}",
    ]
    assert (run.status, run.step, run.method) == ("succeeded", 2, "sft")
    assert (Path(run.adapter_path) / "adapter_model.safetensors").is_file()
