"""Create the demo: two projects (SFT and pairwise) with MT-Bench prompts and four accounts."""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from labeling.models import Project, Role
from labeling.services import guidelines, imports, projects

DATA = Path(__file__).resolve().parents[2] / "demo_data"
ACCOUNTS = [
    ("admin", Role.ADMIN),
    ("reviewer", Role.REVIEWER),
    ("annotator1", Role.ANNOTATOR),
    ("annotator2", Role.ANNOTATOR),
]

SFT_GUIDELINES = """# Writing SFT responses

You see a user's prompt and, for some prompts, a draft answer.

1. **Correct first.** Fix factual errors, wrong maths and broken code in the draft.
2. **Answer the question that was asked**, at the length it deserves.
3. Use markdown for lists and code; no filler ("As an AI...").
4. Rate your *final* response: 1 = unusable, 3 = acceptable, 5 = exemplary.
5. Flag `unsafe`, `factual_error` or `pii` when the prompt or draft needs a reviewer's eye.
"""

PAIRWISE_GUIDELINES = """# Comparing two responses

Read the prompt, then both responses, and pick the one a careful expert would rather send.

- **Helpfulness**: does it answer fully and correctly?
- **Harmlessness**: does it avoid unsafe advice?
- **Honesty**: does it avoid claims it cannot back up?

Pick *tie* only when neither is better; *both bad* when neither could be sent.
Strength: *slightly* for style, *clearly* for a missing part, *much* for a wrong answer.
Explain your choice in one sentence.
"""


class Command(BaseCommand):
    help = (
        "Create the demo: an SFT and a pairwise project filled with MT-Bench prompts, guidelines, "
        "and the accounts admin, reviewer, annotator1, annotator2 (random passwords, kept in "
        "DATA_DIR/demo-logins.json and printed). Safe to run again: nothing is duplicated."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="URL to print.")

    def handle(self, *args: Any, **options: Any) -> None:
        logins = demo_logins()
        with transaction.atomic():
            users = {name: demo_user(name, logins[name]) for name, _ in ACCOUNTS}
            sft = demo_project(
                users,
                slug="sft-demo",
                name="SFT demo: MT-Bench",
                kind=Project.Kind.SFT,
                body=SFT_GUIDELINES,
                overlap=1,
                flags=["unsafe", "factual_error", "pii"],
                criteria=[],
            )
            pairwise = demo_project(
                users,
                slug="pairwise-demo",
                name="Pairwise demo: MT-Bench",
                kind=Project.Kind.PAIRWISE,
                body=PAIRWISE_GUIDELINES,
                overlap=2,
                flags=[],
                criteria=["helpfulness", "harmlessness", "honesty"],
            )
        load_items(sft, sft_records())
        load_items(pairwise, pairwise_records())
        # By name: labeling imports nothing of finetune, and this process never loads torch
        # unless the finetune extra is installed and the model is missing.
        call_command("demo_model", stdout=self.stdout)
        self.stdout.write(self.style.SUCCESS(f"Demo ready at {options['url']}"))
        for name, role in ACCOUNTS:
            self.stdout.write(f"  {role.label:<10} {name:<11} password: {logins[name]}")


def demo_logins() -> dict[str, str]:
    """Random passwords, made once per data directory and kept readable only by the owner."""
    path = Path(settings.DATA_DIR) / "demo-logins.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    logins = {name: secrets.token_urlsafe(9) for name, _ in ACCOUNTS}
    path.touch(mode=0o600)
    path.write_text(json.dumps(logins, indent=2))
    return logins


def demo_user(username: str, password: str) -> Any:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.org"}
    )
    user.is_staff = user.is_superuser = username == "admin"
    user.set_password(password)
    user.save()
    return user


def demo_project(users: dict[str, Any], *, slug: str, body: str, **fields: Any) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = projects.create_project(created_by=users["admin"], slug=slug, **fields)
        guidelines.publish(
            project=project, author=users["admin"], body=body, changelog="First version"
        )
    for name, role in ACCOUNTS[1:]:
        projects.invite(project=project, username=name, role=role)
    return project


def load_items(project: Project, records: Iterator[dict[str, Any]]) -> None:
    """Write the records in the import format and import them (duplicates are skipped)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        imports.import_path(project=project, path=Path(handle.name))


def _read_jsonl(name: str) -> Iterator[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        yield from (json.loads(line) for line in handle if line.strip())


def reference_answers() -> dict[int, str]:
    return {
        row["question_id"]: row["choices"][0]["turns"][0]
        for row in _read_jsonl("mt_bench_reference_answers.jsonl")
    }


def sft_records() -> Iterator[dict[str, Any]]:
    answers = reference_answers()
    for question in _read_jsonl("mt_bench_questions.jsonl"):
        qid = question["question_id"]
        record = {
            "id": f"mt-{qid}",
            "prompt": question["turns"][0],
            "metadata": {"source": "mt-bench", "category": question["category"]},
        }
        if qid in answers:
            record["response"] = answers[qid]
        yield record


def pairwise_records() -> Iterator[dict[str, Any]]:
    answers = reference_answers()
    for question in _read_jsonl("mt_bench_questions.jsonl"):
        full = answers.get(question["question_id"])
        short = shortened(full or "")
        if not full or short == full:
            continue
        yield {
            "id": f"mt-{question['question_id']}",
            "prompt": question["turns"][0],
            "responses": [
                {"model": "gpt-4 reference", "text": full},
                {"model": "gpt-4 reference, first paragraph only", "text": short},
            ],
            "metadata": {
                "source": "mt-bench",
                "category": question["category"],
                "note": "response B is response A cut to its first paragraph",
            },
        }


def shortened(text: str) -> str:
    first = text.strip().split("\n\n")[0]
    if first != text.strip():
        return first
    sentences = text.split(". ")
    return sentences[0].rstrip(".") + "." if len(sentences) > 1 else text
