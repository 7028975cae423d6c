"""`manage.py export`: arguments, messages, errors, stdout."""

import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from exports.management.commands.export import Command
from exports.models import Export
from tests.exports.builders import annotators, pair_item, rows, vote
from tests.factories import PairwiseProjectFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def judged(db):
    project = PairwiseProjectFactory(slug="judged", overlap=2)
    alice, bob = annotators("alice", "bob")
    agreed, split = pair_item(project, "c1", "Agreed?"), pair_item(project, "c2", "Split?")
    vote(agreed, alice, "a")
    vote(agreed, bob, "a")
    vote(split, alice, "a")
    vote(split, bob, "b")
    return project


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_export_writes_the_file_and_reports_counts(judged, tmp_path):
    target = tmp_path / "pairs.jsonl"
    out, err = run("--project", "judged", "--format", "dpo", "--output", str(target))
    assert [row["id"] for row in rows(target)] == ["c1"]
    assert out == (f"Exported 1 rows (train 1) to {target}; left out: items: no_majority 1.\n")
    assert err == ""  # no progress bar when stderr is not a terminal


def test_every_option_reaches_the_export(judged, tmp_path):
    with pytest.raises(CommandError, match="no rows to export"):  # the filters leave nothing
        run(
            "--project", "judged", "--format", "rm", "--output", str(tmp_path / "out"),
            "--style", "standard", "--bare", "--min-votes", "1", "--min-agreement", "0.5",
            "--ties", "count-as-half", "--since", "2025-01-31", "--guideline-version", "1",
            "--exclude-annotator", "bob", "--split", "test=0.2",
        )  # fmt: skip
    bob = get_user_model().objects.get(username="bob")
    assert Export.objects.get().policy == {
        "format": "rm",
        "style": "standard",
        "bare": True,
        "policy": {
            "min_votes": 1,
            "min_agreement": 0.5,
            "ties": "count-as-half",
            "per_annotator": False,
        },
        "filters": {
            "item_status": "active",
            "since": "2025-01-31T00:00:00+00:00",
            "guideline_version": 1,
            "excluded_annotators": [bob.pk],
        },
        "split": [{"name": "test", "fraction": 0.2}],
    }


def test_sft_options_reach_the_export(tmp_path):
    project = ProjectFactory(slug="sft-opts")
    with pytest.raises(CommandError):  # nothing to export, but the options were accepted
        run(
            "--project", "sft-opts", "--format", "sft", "--output", str(tmp_path / "x.jsonl"),
            "--min-rating", "3", "--blocking-flags", "pii, unsafe", "--all-responses",
        )  # fmt: skip
    assert Export.objects.get(project=project).policy["policy"] == {
        "min_rating": 3,
        "blocking_flags": ["pii", "unsafe"],
        "all_responses": True,
    }


def test_stdout_gets_only_the_rows_and_stderr_the_report(judged):
    out, err = run("--project", "judged", "--format", "dpo", "--output", "-", "--bare")
    assert [json.loads(line) for line in out.splitlines()] == [
        {
            "prompt": [{"role": "user", "content": "Agreed?"}],
            "chosen": [{"role": "assistant", "content": "A: Agreed?"}],
            "rejected": [{"role": "assistant", "content": "B: Agreed?"}],
        }
    ]
    assert err == "Exported 1 rows (train 1) to stdout; left out: items: no_majority 1.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--project", "nope", "--format", "dpo"), 'no project with the slug "nope"'),
        (
            ("--project", "judged", "--format", "sft"),
            "--format sft does not fit a pairwise project",
        ),
        (
            ("--project", "judged", "--format", "dpo", "--min-votes", "3"),
            "no rows to export: items left out by min_votes (2)",
        ),
        (
            ("--project", "judged", "--format", "dpo", "--min-rating", "3"),
            "--min-rating applies to SFT projects only",
        ),
    ],
)
def test_errors_say_what_is_wrong(judged, tmp_path, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*args, "--output", str(tmp_path / "pairs.jsonl"))
    assert not (tmp_path / "pairs.jsonl").exists()


def test_existing_output_needs_force(judged, tmp_path):
    target = tmp_path / "pairs.jsonl"
    target.write_text("keep me\n")
    with pytest.raises(CommandError, match="already exists; add --force"):
        run("--project", "judged", "--format", "dpo", "--output", str(target))
    assert target.read_text() == "keep me\n"
    run("--project", "judged", "--format", "dpo", "--output", str(target), "--force")
    assert [row["id"] for row in rows(target)] == ["c1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--split", "train=0.1"), 'not "train"'),
        (("--since", "last week"), "is not a date like 2025-01-31"),
        (("--ties", "coin-flip"), "invalid choice: 'coin-flip'"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(judged, tmp_path, capsys, args, message):
    with pytest.raises(CommandError, match=message):
        run("--project", "judged", "--format", "dpo", "--output", str(tmp_path / "x"), *args)


def test_help_explains_every_option():
    text = Command().create_parser("manage.py", "export").format_help()
    for option in (
        "--project", "--format", "--output", "--style", "--bare", "--split", "--force",
        "--min-votes", "--min-agreement", "--ties", "--per-annotator", "--min-rating",
        "--blocking-flags", "--all-responses", "--since", "--guideline-version",
        "--exclude-annotator",
    ):  # fmt: skip
        assert option in text
    assert "count-as-half" in text
    assert "duplicate prompts never straddle" in " ".join(text.split())
