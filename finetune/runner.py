"""The gpu worker's side of a run: build the trainer's job, feed progress back, finish.

Progress, metrics and logs reach the run's row at most every PROGRESS_SECONDS, whatever rate
the trainer reports at, and the metric series is bounded (MAX_POINTS, thinned evenly), so a
run of a million steps costs the database what a short one does. A heartbeat thread touches
the row every HEARTBEAT_SECONDS while training, even through a step that takes minutes: when
the worker dies the heartbeats stop, and the reaper (services.fail_stale_runs) fails the run.
torch and friends load only inside `finetune.training.train`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from types import TracebackType
from typing import Any

from django.db import connection

from finetune import options, paths, services, sources
from finetune.errors import InvalidRun
from finetune.models import FinetuneRun
from finetune.training import Cancelled, TrainingError, TrainJob, train
from finetune.training.config import Method

logger = logging.getLogger(__name__)

Status = FinetuneRun.Status
PROGRESS_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0
MAX_POINTS = 500
LOG_LINES = 200
REPORT_FILE = "training_report.json"
# The step metrics kept for the charts and the API; other keys the trainer sends are dropped.
POINT_KEYS = (
    "step", "loss", "learning_rate", "grad_norm", "rewards/accuracies", "rewards/margins",
    "tokens_per_s", "seconds",
)  # fmt: skip


def execute(run: FinetuneRun) -> None:
    """Train a claimed (running) run and record how it ended. Called once per run."""
    reporter = Reporter(run.pk)
    try:
        job = build_job(run)
        with Heartbeat(run.pk, reporter):
            result = train(job, reporter.report, reporter.should_stop)
    except Cancelled:
        reporter.finish(Status.CANCELLED, error="Cancelled on request.")
    except (InvalidRun, TrainingError) as error:
        reporter.finish(Status.FAILED, error=str(error))
    except Exception as error:
        # Terminal: the row says what went wrong; a retry would find the run claimed anyway.
        logger.exception("finetune.failed", extra={"run_id": run.pk})
        reporter.finish(Status.FAILED, error=f"{type(error).__name__}: {error}")
    else:
        report = job.output_dir / REPORT_FILE
        reporter.finish(
            Status.SUCCEEDED,
            adapter_path=str(result.adapter_dir),
            report_path=str(report) if report.is_file() else "",
            final_metrics=_json_ready(result.metrics),
        )


def build_job(run: FinetuneRun) -> TrainJob:
    """The trainer's job for a run; InvalidRun when its export or model no longer qualify."""
    files = sources.check_export(run.export, run.method)
    sources.verify(run.export, files)
    folder = paths.resolve_base_model(run.base_model)  # checked again: the folder may have moved
    lora, settings = options.from_dicts(run.lora, run.hyperparameters)
    output = paths.run_dir(run.pk)
    output.mkdir(parents=True, exist_ok=True)
    method: Method = "dpo" if run.method == "dpo" else "sft"
    return TrainJob(method, folder, files.train, files.test, output, lora, settings)


class Reporter:
    """Collects the trainer's reports and writes them to the row at a bounded rate."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.points: list[dict[str, float]] = []
        self.lines: deque[str] = deque(maxlen=LOG_LINES)
        self.fields: dict[str, Any] = {}
        self.written_at = time.monotonic()
        self.stop = threading.Event()  # cancel requested, or the run was taken from us

    def report(self, point: dict[str, Any]) -> None:
        step, total = int(point.get("step", 0)), int(point.get("total_steps", 0))
        self.points = thin([*self.points, _point(point)])
        self.lines.append(_log_line(point))
        progress = min(step / total, 1.0) if total else 0.0
        self.fields.update(step=step, total_steps=total, progress=progress)
        if time.monotonic() - self.written_at >= PROGRESS_SECONDS:
            self.write()

    def should_stop(self) -> bool:
        if time.monotonic() - self.written_at >= PROGRESS_SECONDS:
            self.write()  # also reads the cancel flag: at most once per PROGRESS_SECONDS
        return self.stop.is_set()

    def write(self) -> None:
        self.written_at = time.monotonic()
        logs = "\n".join(self.lines)
        running, cancel = services.record_progress(
            run_id=self.run_id, fields={**self.fields, "metrics": self.points, "logs": logs}
        )
        if cancel or not running:
            self.stop.set()

    def finish(self, status: str, **fields: Any) -> None:
        self.lines.append(f"{status}: {fields.get('error') or 'adapter written'}")
        fields |= self.fields | {"metrics": self.points, "logs": "\n".join(self.lines)}
        services.finish(run_id=self.run_id, status=status, **fields)


def thin(points: list[dict[str, float]]) -> list[dict[str, float]]:
    """At most MAX_POINTS: past it, every other point goes (the first and last stay)."""
    if len(points) <= MAX_POINTS:
        return points
    return [*points[:-1:2], points[-1]]


def _point(report: dict[str, Any]) -> dict[str, float]:
    return {key: report[key] for key in POINT_KEYS if isinstance(report.get(key), int | float)}


def _log_line(report: dict[str, Any]) -> str:
    shown = ", ".join(
        f"{key} {value:.4g}" for key, value in _point(report).items() if key != "step"
    )
    return f"step {report.get('step', 0)}/{report.get('total_steps', '?')}: {shown}"


def _json_ready(metrics: dict[str, Any]) -> dict[str, Any]:
    """Numbers, strings and flags only: what a JSON column and the API can carry."""
    plain = (int, float, str, bool)
    return {key: value for key, value in metrics.items() if isinstance(value, plain)}


class Heartbeat:
    """A thread that touches the run's heartbeat until the block ends."""

    def __init__(self, run_id: int, reporter: Reporter) -> None:
        self.run_id = run_id
        self.reporter = reporter
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"finetune-{run_id}-heartbeat")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done.set()
        self.thread.join()

    def _beat(self) -> None:
        try:
            while not self.done.wait(HEARTBEAT_SECONDS):
                if not services.heartbeat(run_id=self.run_id):
                    self.reporter.stop.set()  # reaped or finished elsewhere: stop training
        finally:
            connection.close()  # this thread's own connection
