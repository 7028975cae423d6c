"""Finetune runs: base model paths, launching, the claim, stale runs, cancel, the command.

The worker's training itself runs in tests/integration/test_finetune_worker.py; these tests call
the services and the task functions in this process, with real rows and files.
"""

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from exports.models import Export
from finetune import devices, paths, runner, services, sources, tasks
from finetune.errors import InvalidRun, RunFinished
from finetune.estimate import estimate
from finetune.models import FinetuneRun
from finetune.training.config import LoraSettings, TrainSettings
from tests.finetune.export_rows import dpo_line, sft_line

ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "vocab_size": 512,
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}
CPU = devices.Device("cpu", 8 * 1024**3, "detected")


# Helpers (the view tests import them) ---------------------------------------------------------


def model_folder(root: Path, name: str = "tiny", config: dict | None = None) -> Path:
    """A model folder with a config.json: enough for the checks and the estimate."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config or TINY_CONFIG))
    return folder


def export_with_files(project, directory: Path, fmt: str = "dpo", **fields) -> Export:
    """A succeeded export whose directory holds train.jsonl as the exporter writes it."""
    directory.mkdir(parents=True, exist_ok=True)
    line = (
        dpo_line("k1", "Why?", "Because.", "No.") if fmt == "dpo" else sft_line("k1", "Hi?", "Hi.")
    )
    (directory / "train.jsonl").write_bytes(line)
    files = {
        "train.jsonl": {"sha256": hashlib.sha256(line).hexdigest(), "rows": 1, "bytes": len(line)}
    }
    values = {"status": "succeeded", "finished_at": timezone.now(), "files": files}
    values |= {"counts": {"train": 1}, "path": f"{directory}/"} | fields
    return Export.objects.create(project=project, format=fmt, style="conversational", **values)


@pytest.fixture
def models_root(settings, tmp_path):
    """DATA_DIR and FINETUNE_MODELS_DIR under this test's own folder; one tiny model in it."""
    settings.DATA_DIR = tmp_path
    settings.FINETUNE_MODELS_DIR = str(tmp_path / "models")
    settings.FINETUNE_DEVICE_MEMORY_GB = "8"
    model_folder(tmp_path / "models")
    return tmp_path / "models"


@pytest.fixture
def dpo_export(pairwise_project, models_root):
    return export_with_files(pairwise_project, models_root.parent / "exports" / "1")


def plan(project, export, method="dpo", base_model="tiny", **values):
    return services.plan_run(
        project=project, export_id=export.pk, method=method, base_model=base_model, values=values
    )


def queued_run(project, export, **values) -> FinetuneRun:
    return services.create_run(plan=plan(project, export, **values), created_by=None)


# Base model paths -----------------------------------------------------------------------------


def test_a_model_is_named_by_folder_or_absolute_path_inside_the_models_dir(models_root):
    assert paths.resolve_base_model("tiny") == models_root / "tiny"
    assert paths.resolve_base_model(str(models_root / "tiny")) == models_root / "tiny"
    assert paths.available_models() == ["tiny"]


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "is required: a model folder in the models directory"),
        ("../outside", "must be a folder inside the models directory {root}"),
        ("/etc", "must be a folder inside the models directory {root}"),
        (".", "must be a folder inside the models directory {root}"),
        ("missing", "no model folder at {root}/missing"),
        ("tiny\x00", "cannot be resolved: embedded null byte"),
    ],
)
def test_a_path_outside_or_missing_is_refused(models_root, given, reason):
    (models_root.parent / "outside").mkdir()
    (models_root.parent / "outside" / "config.json").write_text("{}")
    with pytest.raises(InvalidRun) as raised:
        paths.resolve_base_model(given)
    assert raised.value.errors == {"base_model": reason.format(root=models_root)}


def test_a_symlink_out_of_the_models_dir_is_refused(models_root, tmp_path):
    outside = model_folder(tmp_path, "elsewhere")
    (models_root / "escape").symlink_to(outside)
    with pytest.raises(InvalidRun) as raised:
        paths.resolve_base_model("escape")
    assert raised.value.errors == {
        "base_model": f"must be a folder inside the models directory {models_root}"
    }


def test_a_symlinked_file_out_of_the_models_dir_is_refused(models_root, tmp_path):
    (tmp_path / "secret").write_text("not a weight")
    (models_root / "tiny" / "model.safetensors").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidRun) as raised:
        paths.resolve_base_model("tiny")
    reason = f"model.safetensors in {models_root / 'tiny'} links outside the models directory"
    assert raised.value.errors == {"base_model": reason}


def test_a_folder_without_config_json_is_refused(models_root):
    (models_root / "empty").mkdir()
    with pytest.raises(InvalidRun) as raised:
        paths.resolve_base_model("empty")
    reason = f"{models_root / 'empty'} has no config.json: not a model folder"
    assert raised.value.errors == {"base_model": reason}


# Launching ------------------------------------------------------------------------------------


def test_create_run_records_the_settings_and_queues_the_task_on_commit(
    pairwise_project, dpo_export, models_root, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        run = queued_run(pairwise_project, dpo_export, rank="8", max_steps="5", seed=7)
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert (run.status, run.method, run.export_id, run.project_id) == (
        "queued", "dpo", dpo_export.pk, pairwise_project.pk,
    )  # fmt: skip
    assert run.base_model == str(models_root / "tiny")
    assert run.lora == {
        "rank": 8, "alpha": 32, "dropout": 0.05,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    }  # fmt: skip
    assert (run.hyperparameters["max_steps"], run.hyperparameters["seed"], run.seed) == (5, 7, 7)
    assert run.hyperparameters["learning_rate"] == 2e-4
    expected = estimate(TINY_CONFIG, LoraSettings(rank=8), TrainSettings(max_steps=5), method="dpo")
    assert run.estimate == expected.as_dict()
    assert run.forced is False


def test_every_bad_field_is_named_at_once(pairwise_project, dpo_export):
    with pytest.raises(InvalidRun) as raised:
        plan(
            pairwise_project, dpo_export, base_model="../x", rank="0", dropout="lots",
            target_modules="q_proj wq", packing=True, checkpoint_layers="1", colour="blue",
        )  # fmt: skip
    assert raised.value.errors == {
        "base_model": f"must be a folder inside the models directory {paths.models_dir()}",
        "rank": "must be at least 1",
        "dropout": "must be a number",
        "target_modules": "unknown module 'wq'; choose from q_proj, k_proj, v_proj, o_proj, "
        "gate_proj, up_proj, down_proj",
        "packing": "applies to SFT runs only",
        "checkpoint_layers": "needs gradient_checkpointing on",
        "colour": "is not a setting",
    }
    assert FinetuneRun.objects.count() == 0


def test_checkpoint_layers_must_exist_in_the_model(pairwise_project, dpo_export):
    with pytest.raises(InvalidRun) as raised:
        plan(pairwise_project, dpo_export, gradient_checkpointing="1", checkpoint_layers="3")
    assert raised.value.errors == {"checkpoint_layers": "is more than the model's 2 layers"}


def test_the_export_must_have_succeeded_in_the_methods_format_in_this_project(
    pairwise_project, sft_project, dpo_export, models_root
):
    sft = export_with_files(sft_project, models_root.parent / "exports" / "2", fmt="sft")
    mine = export_with_files(pairwise_project, models_root.parent / "exports" / "3", fmt="sft")
    failed = Export.objects.create(
        project=pairwise_project, format="dpo", status="failed", finished_at=timezone.now()
    )
    cases = [
        (dpo_export, "sft", f"a sft run needs a sft export; export {dpo_export.pk} is dpo"),
        (mine, "dpo", f"a dpo run needs a dpo export; export {mine.pk} is sft"),
        (failed, "dpo", f"export {failed.pk} has not succeeded (failed)"),
        (sft, "sft", f"no export {sft.pk} in this project"),
    ]
    for export, method, reason in cases:
        with pytest.raises(InvalidRun) as raised:
            plan(pairwise_project, export, method=method)
        assert raised.value.errors == {"export": reason}


def test_a_run_that_cannot_fit_is_refused_unless_forced(pairwise_project, dpo_export, settings):
    settings.FINETUNE_DEVICE_MEMORY_GB = "0.001"  # 1 MiB
    planned = plan(pairwise_project, dpo_export)
    assert planned.fits is False
    with pytest.raises(InvalidRun) as raised:
        services.create_run(plan=planned, created_by=None)
    assert raised.value.errors["memory"].startswith("estimated ")
    assert "does not fit in the 1.0 MiB of configured device" in raised.value.errors["memory"]
    assert FinetuneRun.objects.count() == 0
    run = services.create_run(plan=planned, created_by=None, force=True)
    assert (run.status, run.forced) == ("queued", True)
    assert "lower batch_size or max_length" in planned.refusal  # no checkpointing fits 1 MiB


def test_a_refusal_names_the_fewest_layers_to_recompute(
    pairwise_project, dpo_export, models_root, settings
):
    """An 8-layer model on a device between the estimates with 4 and with 5 layers recomputed."""
    model_folder(models_root, "deep", TINY_CONFIG | {"num_hidden_layers": 8})

    def total(**values):
        return plan(pairwise_project, dpo_export, base_model="deep", **values).estimate.total

    recomputing = {n: total(gradient_checkpointing="1", checkpoint_layers=str(n)) for n in (4, 5)}
    assert recomputing[5] < recomputing[4] < total()
    settings.FINETUNE_DEVICE_MEMORY_GB = repr(sum(recomputing.values()) / 2 / 1024**3)

    planned = plan(pairwise_project, dpo_export, base_model="deep")

    assert (planned.fits, planned.fewest_checkpointed) == (False, 5)
    assert planned.refusal.endswith(
        ": use gradient_checkpointing with checkpoint_layers 5 to 8 (or empty: all),"
        " or force the launch"
    )
    fitting = plan(
        pairwise_project, dpo_export, base_model="deep", gradient_checkpointing="1",
        checkpoint_layers="5",
    )  # fmt: skip
    assert fitting.fits is True


# The claim and the stale-run reaper -----------------------------------------------------------


def test_a_run_is_claimed_once(pairwise_project, dpo_export):
    run = queued_run(pairwise_project, dpo_export)
    claimed = services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    assert (claimed.status, claimed.worker, claimed.device, claimed.device_memory) == (
        "running", "gpu@a", "cpu", 8 * 1024**3,
    )  # fmt: skip
    assert services.claim(run_id=run.pk, worker="gpu@b", device=CPU) is None
    run.refresh_from_db()
    assert (run.status, run.worker, run.started_at) == ("running", "gpu@a", claimed.started_at)


def test_a_redelivered_task_message_does_nothing(pairwise_project, dpo_export):
    run = queued_run(pairwise_project, dpo_export)
    services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    before = FinetuneRun.objects.values().get(pk=run.pk)
    tasks.run_finetune(run.pk)  # the same message again, while the first delivery trains
    assert FinetuneRun.objects.values().get(pk=run.pk) == before


def test_a_task_for_a_cancelled_or_missing_run_does_nothing(pairwise_project, dpo_export):
    run = services.cancel(run=queued_run(pairwise_project, dpo_export))
    tasks.run_finetune(run.pk)
    tasks.run_finetune(run.pk + 1000)
    run.refresh_from_db()
    assert (run.status, run.started_at, run.worker) == ("cancelled", None, "")


def test_a_run_whose_heartbeat_stopped_is_failed_once(pairwise_project, dpo_export, settings):
    settings.FINETUNE_STALE_SECONDS = 60
    stale, alive = (
        queued_run(pairwise_project, dpo_export),
        queued_run(pairwise_project, dpo_export),
    )
    for run in (stale, alive):
        services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    now = timezone.now()
    FinetuneRun.objects.filter(pk=stale.pk).update(heartbeat_at=now - timedelta(seconds=61))
    FinetuneRun.objects.filter(pk=alive.pk).update(heartbeat_at=now - timedelta(seconds=59))
    assert services.fail_stale_runs(now=now) == 1
    assert services.fail_stale_runs(now=now) == 0
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert (stale.status, stale.error, stale.finished_at) == ("failed", services.STALE_MESSAGE, now)
    assert (alive.status, alive.finished_at) == ("running", None)
    assert services.heartbeat(run_id=stale.pk) is False  # a late heartbeat cannot revive it
    assert services.heartbeat(run_id=alive.pk) is True


def test_the_beat_task_fails_stale_runs(pairwise_project, dpo_export, settings):
    settings.FINETUNE_STALE_SECONDS = 60
    dead = queued_run(pairwise_project, dpo_export)
    services.claim(run_id=dead.pk, worker="gpu@a", device=CPU)
    FinetuneRun.objects.filter(pk=dead.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert tasks.fail_stale_runs() == 1
    assert FinetuneRun.objects.get(pk=dead.pk).status == "failed"


def test_the_claim_itself_reaps(pairwise_project, dpo_export, settings):
    settings.FINETUNE_STALE_SECONDS = 60
    dead, next_run = (
        queued_run(pairwise_project, dpo_export),
        queued_run(pairwise_project, dpo_export),
    )
    services.claim(run_id=dead.pk, worker="gpu@a", device=CPU)
    FinetuneRun.objects.filter(pk=dead.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    services.claim(run_id=next_run.pk, worker="gpu@b", device=CPU)
    assert FinetuneRun.objects.get(pk=dead.pk).status == "failed"
    assert FinetuneRun.objects.get(pk=next_run.pk).status == "running"


def test_the_database_refuses_inconsistent_states(pairwise_project, dpo_export):
    from django.db import IntegrityError, transaction

    run = queued_run(pairwise_project, dpo_export)
    bad = [
        {"status": "running"},  # no started_at or heartbeat
        {"status": "succeeded", "finished_at": timezone.now()},  # no start, no adapter
        {"status": "failed"},  # no finished_at
        {"progress": 1.5},
        {"status": "paused"},
    ]
    for fields in bad:
        with pytest.raises(IntegrityError), transaction.atomic():
            FinetuneRun.objects.filter(pk=run.pk).update(**fields)
    assert FinetuneRun.objects.get(pk=run.pk).status == "queued"


# Cancel ---------------------------------------------------------------------------------------


def test_cancel_ends_a_queued_run_at_once_and_flags_a_running_one(pairwise_project, dpo_export):
    queued, running = (
        queued_run(pairwise_project, dpo_export),
        queued_run(pairwise_project, dpo_export),
    )
    services.claim(run_id=running.pk, worker="gpu@a", device=CPU)
    queued = services.cancel(run=queued)
    assert (queued.status, queued.cancel_requested) == ("cancelled", True)
    assert queued.finished_at is not None
    running = services.cancel(run=running)
    running = services.cancel(run=running)  # twice: the same request
    assert (running.status, running.cancel_requested, running.finished_at) == (
        "running",
        True,
        None,
    )
    with pytest.raises(RunFinished, match=f"run {queued.pk} has already finished"):
        services.cancel(run=queued)


def test_the_reporter_sees_the_cancel_and_stops_training(pairwise_project, dpo_export):
    run = queued_run(pairwise_project, dpo_export)
    services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    reporter = runner.Reporter(run.pk)
    reporter.report({"step": 1, "total_steps": 4, "loss": 2.5})
    reporter.write()
    assert reporter.should_stop() is False
    services.cancel(run=run)
    reporter.write()
    assert reporter.should_stop() is True
    reporter.finish(FinetuneRun.Status.CANCELLED, error="Cancelled on request.")
    run.refresh_from_db()
    assert (run.status, run.step, run.total_steps, run.progress) == ("cancelled", 1, 4, 0.25)
    assert run.metrics == [{"step": 1, "loss": 2.5}]
    assert run.logs == "step 1/4: loss 2.5\ncancelled: Cancelled on request."


def test_the_metric_series_stays_bounded_and_keeps_both_ends():
    points: list[dict] = []
    for step in range(1, 2001):
        points = runner.thin([*points, {"step": step, "loss": 1.0}])
    assert len(points) <= runner.MAX_POINTS
    assert (points[0]["step"], points[-1]["step"]) == (1, 2000)
    assert runner.thin([{"step": n} for n in range(501)]) == [
        *({"step": n} for n in range(0, 500, 2)), {"step": 500},
    ]  # fmt: skip


# The command ----------------------------------------------------------------------------------


def test_the_command_queues_a_run_and_prints_the_estimate(pairwise_project, dpo_export):
    out = StringIO()
    call_command(
        "finetune", "--export", str(dpo_export.pk), "--method", "dpo", "--base-model", "tiny",
        "--max-steps", "3", "--target-modules", "q_proj", "v_proj", "--gradient-checkpointing",
        stdout=out,
    )  # fmt: skip
    run = FinetuneRun.objects.get()
    assert out.getvalue().splitlines() == [
        f"Memory estimate: {services.gib(run.estimate['total'])} of 8.0 GiB on configured device.",
        f"Queued finetune run {run.pk} (dpo on export {dpo_export.pk}).",
    ]
    assert run.lora["target_modules"] == ["q_proj", "v_proj"]
    assert (run.hyperparameters["max_steps"], run.hyperparameters["gradient_checkpointing"]) == (
        3, True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--export", "999"], "--export: no export with the id 999"),
        (["--base-model", "../x"], "--base-model: must be a folder inside the models directory"),
        (["--method", "sft"], "--export: a sft run needs a sft export; export {pk} is dpo"),
        (["--rank", "zero"], "--rank: must be an integer"),
        (["--learning-rate", "5"], "--learning-rate: must be at most 1"),
    ],
)
def test_the_command_names_the_bad_flag(pairwise_project, dpo_export, arguments, message):
    given = {"--export": str(dpo_export.pk), "--method": "dpo", "--base-model": "tiny"}
    given |= dict(zip(arguments[::2], arguments[1::2], strict=True))
    with pytest.raises(CommandError) as raised:
        call_command("finetune", *[part for pair in given.items() for part in pair])
    assert str(raised.value).startswith(message.format(pk=dpo_export.pk))
    assert FinetuneRun.objects.count() == 0


# The web process stays free of torch ----------------------------------------------------------


def test_importing_the_web_side_of_finetune_loads_no_torch():
    code = (
        "import django; django.setup();"
        "import finetune.models, finetune.views, finetune.tasks, finetune.services,"
        " finetune.api.views, finetune.urls, annotate.urls, sys;"
        "from django.core.management import load_command_class;"
        "load_command_class('finetune', 'finetune');"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl', 'datasets')"
        " if m in sys.modules))"
    )
    env = {"DJANGO_SETTINGS_MODULE": "annotate.settings", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], cwd=ROOT, env=env | _data_dir(), capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"


def _data_dir() -> dict[str, str]:
    import os

    return {"DATA_DIR": os.environ.get("DATA_DIR", str(ROOT / "var"))}


def test_the_demo_model_is_made_once(models_root):
    import torch

    torch.set_num_threads(1)
    target = models_root / "tiny-llama"
    first, second = StringIO(), StringIO()
    call_command("demo_model", stdout=first)
    assert first.getvalue() == f"tiny model written to {target}\n"
    assert paths.resolve_base_model("tiny-llama") == target
    call_command("demo_model", stdout=second)
    assert second.getvalue() == f"Demo model: {target}\n"


def test_a_config_json_that_is_not_an_object_is_refused(pairwise_project, dpo_export, models_root):
    (models_root / "tiny" / "config.json").write_text("[1, 2]")
    with pytest.raises(InvalidRun) as raised:
        plan(pairwise_project, dpo_export)
    assert raised.value.errors == {"base_model": "config.json must hold a JSON object"}


# The export's files ---------------------------------------------------------------------------


def test_the_files_are_found_from_the_export_record(pairwise_project, models_root):
    split = export_with_files(pairwise_project, models_root.parent / "split")
    (models_root.parent / "split" / "test.jsonl").write_bytes(b"{}\n")
    split.files = split.files | {"test.jsonl": {"sha256": "", "rows": 1, "bytes": 3}}
    assert sources.export_files(split) == sources.ExportFiles(
        models_root.parent / "split" / "train.jsonl", models_root.parent / "split" / "test.jsonl"
    )
    single = Export(pk=7, path="/x/dpo.jsonl", files={"dpo.jsonl": {}})
    assert sources.export_files(single) == sources.ExportFiles(Path("/x/dpo.jsonl"), None)
    with pytest.raises(InvalidRun) as raised:
        sources.export_files(Export(pk=8, path="-", files={}))
    assert raised.value.errors == {"export": "export 8 went to standard output: no files"}


def test_a_run_whose_export_file_changed_fails_before_training(pairwise_project, dpo_export):
    run = queued_run(pairwise_project, dpo_export)
    claimed = services.claim(run_id=run.pk, worker="gpu@a", device=CPU)
    train_file = Path(dpo_export.path) / "train.jsonl"
    train_file.write_bytes(train_file.read_bytes() + b"\n")
    runner.execute(claimed)
    run.refresh_from_db()
    assert (run.status, run.error, run.adapter_path) == (
        "failed", f"export: {train_file} changed after the export was written", "",
    )  # fmt: skip
    assert run.logs == f"failed: export: {train_file} changed after the export was written"
