"""Importing items: the file format (pure), the service, the job, the command."""

import gzip
import hashlib
import io
import json
import shutil
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from labeling import importing, tasks
from labeling.models import ImportJob, Item, Response
from labeling.services import imports
from tests.conftest import require_postgres
from tests.factories import ItemFactory

DATA = Path(__file__).resolve().parent.parent / "data"
HH_SAMPLE = DATA / "hh_rlhf_sample.jsonl"
BAD_FILE = "\n".join(
    [
        '{"id": "a", "prompt": "One?", "responses": ["A1", "B1"]}',
        "",
        '{"id": "b", "prompt": "Two?" "responses": ["A2", "B2"]}',
        '{"id": "c", "prompt": "Three?", "responses": ["x", "y", "z"]}',
        '{"id": "d", "prompt": "Four?", "responses": ["A4", "B4"], "extra": 1}',
        '{"id": "e", "messages": [{"role": "user", "content": "Hi"}, '
        '{"role": "assistant", "content": "Hello"}], "responses": ["a", "b"]}',
        '{"id": "f", "prompt": "Five?", "responses": ["A5", "B5"]}',
    ]
)
BAD_FILE_ERRORS = [
    (3, "invalid JSON (Expecting ',' delimiter at column 30)"),
    (4, '"responses" must hold exactly 2 responses, got 3'),
    (
        5,
        'unknown field "extra" (the fields are id, prompt, messages, response, responses, '
        "metadata)",
    ),
    (6, '"messages" must end with a user turn, got "assistant"'),
]


PAIRWISE_RECORDS = [
    {
        "id": "p-3",
        "prompt": "Explain LoRA.",
        "responses": [{"model": "m1", "text": "Low rank."}, {"model": "m2", "text": "?"}],
        "metadata": {"source": "forum"},
    },
    {
        "id": 4,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye?"},
        ],
        "responses": ["Bye.", "See you."],
    },
]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def spec_hash(messages: list[list[str]], responses: list[str]) -> str:
    """The content hash as docs/import-format.md defines it, computed independently."""
    canonical = {"messages": messages, "responses": sorted(responses)}
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def item_rows(project) -> list[tuple]:
    return list(
        Item.objects.filter(project=project)
        .order_by("pk")
        .values_list("external_id", "messages", "prompt", "draft_response", "metadata")
    )


def response_rows(project) -> list[tuple]:
    return list(
        Response.objects.filter(item__project=project)
        .order_by("item_id", "position")
        .values_list("item__external_id", "position", "model", "text")
    )


# The format, without a database ------------------------------------------------------------


def test_content_hash_ignores_whitespace_unicode_form_and_response_order():
    given = importing.content_hash(
        [{"role": "user", "content": "  Caf\u0065\u0301:\n\n what  is it? "}], ["b  b", "a"]
    )
    expected = spec_hash([["user", "Caf\u00e9: what is it?"]], ["a", "b b"])

    assert given == expected
    assert given != importing.content_hash(
        [{"role": "system", "content": "Café: what is it?"}], ["a", "b b"]
    )


def test_build_record_normalizes_each_accepted_shape():
    record = importing.build_record(
        {"id": 17, "prompt": "Explain LoRA.", "responses": ["x", {"model": " m2 ", "text": "y"}]},
        kind="pairwise",
    )

    assert record == {
        "external_id": "17",
        "messages": [{"role": "user", "content": "Explain LoRA."}],
        "prompt": "Explain LoRA.",
        "draft_response": "",
        "metadata": {},
        "responses": [("", "x"), ("m2", "y")],
        "content_hash": spec_hash([["user", "Explain LoRA."]], ["x", "y"]),
    }


INVALID_RECORDS = [
    ([1], "sft", "expected a JSON object, got an array"),
    ({"prompt": "p", "messages": []}, "sft", 'give "prompt" or "messages", not both'),
    ({"metadata": {}}, "sft", 'give "prompt" or "messages"'),
    ({"prompt": "  "}, "sft", '"prompt" must be a non-empty string'),
    (
        {"messages": "hi"},
        "sft",
        '"messages" must be a non-empty list of {"role", "content"} objects',
    ),
    (
        {"messages": [{"role": "bot", "content": "x"}]},
        "sft",
        "\"messages[0].role\" must be one of system, user, assistant, got 'bot'",
    ),
    (
        {"messages": [{"role": "user", "content": "x", "name": "n"}]},
        "sft",
        '"messages[0]" has unknown field "name"',
    ),
    (
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
        "sft",
        '"messages[1].role" may be "system" only in the first message',
    ),
    (
        {"prompt": "p", "responses": ["a", "b"]},
        "sft",
        '"responses" is for pairwise projects; SFT takes a "response"',
    ),
    ({"prompt": "p", "response": 3}, "sft", '"response" must be a string'),
    (
        {"prompt": "p"},
        "pairwise",
        '"responses" is required in a pairwise project (2 responses)',
    ),
    (
        {"prompt": "p", "responses": ["a"]},
        "pairwise",
        '"responses" must hold exactly 2 responses, got 1',
    ),
    (
        {"prompt": "p", "responses": ["a", {"text": ""}]},
        "pairwise",
        '"responses[1].text" must be a non-empty string',
    ),
    (
        {"prompt": "p", "responses": ["a", {"text": "b", "score": 1}]},
        "pairwise",
        '"responses[1]" has unknown field "score"',
    ),
    (
        {"prompt": "p", "responses": ["a b", " a  b "]},
        "pairwise",
        '"responses" holds the same text twice',
    ),
    (
        {"prompt": "p", "responses": ["a", "b"], "response": "d"},
        "pairwise",
        '"response" is an SFT draft; a pairwise item takes "responses"',
    ),
    ({"prompt": "p", "metadata": []}, "sft", '"metadata" must be a JSON object'),
    ({"prompt": "p", "id": True}, "sft", '"id" must be a string or an integer'),
    ({"prompt": "p", "id": "x" * 201}, "sft", '"id" is longer than 200 characters'),
    (
        {"chosen": "\n\nHuman: a\n\nAssistant: b"},
        "pairwise",
        '"rejected" is missing: an HH-RLHF pair has "chosen" and "rejected"',
    ),
    (
        {"chosen": "x", "rejected": "y"},
        "sft",
        '"chosen"/"rejected" pairs are for pairwise projects',
    ),
    (
        {"chosen": "just text", "rejected": "\n\nHuman: a\n\nAssistant: b"},
        "pairwise",
        '"chosen" must be a transcript of "Human:" and "Assistant:" turns',
    ),
]


@pytest.mark.parametrize(("record", "kind", "reason"), INVALID_RECORDS)
def test_build_record_names_the_field_at_fault(record, kind, reason):
    with pytest.raises(importing.InvalidRecord) as error:
        importing.build_record(record, kind=kind)

    assert str(error.value) == reason


def test_null_fields_count_as_absent():
    record = importing.build_record(
        {"id": None, "prompt": "p", "messages": None, "metadata": None, "response": None},
        kind="sft",
    )

    assert (record["external_id"], record["metadata"], record["draft_response"]) == ("", {}, "")


def test_read_records_reports_lines_that_cannot_be_stored(tmp_path):
    path = write(
        tmp_path,
        "items.jsonl",
        '{"prompt": "NaN?", "metadata": {"x": NaN}}\n'
        '{"prompt": "nul \\u0000"}\n'
        '{"prompt": "half \\ud800 a surrogate"}\n'
        '{"prompt": "fine \\ud83d\\ude00"}\n',
    )

    lines = list(importing.read_records(path, kind="sft"))

    assert [(line.number, line.error) for line in lines] == [
        (1, "invalid JSON (NaN is not a JSON value)"),
        (2, "contains a NUL character (\\u0000), which cannot be stored"),
        (3, "contains an unpaired surrogate (not Unicode)"),
        (4, None),
    ]
    assert lines[3].record["prompt"] == "fine \U0001f600"


def test_a_json_array_is_refused_as_a_whole(tmp_path):
    path = write(tmp_path, "items.json", '[{"prompt": "p"}]\n')

    with pytest.raises(importing.UnreadableFile) as error:
        list(importing.read_records(path, kind="sft"))

    assert str(error.value) == "line 1: a JSON array is not JSON Lines: write one object a line"


def test_an_unknown_name_is_sniffed_by_its_first_byte(tmp_path):
    jsonl_file = write(tmp_path, "upload.txt", '\ufeff{"prompt": "p"}\n')
    csv_file = write(tmp_path, "upload.dat", "prompt\nq\n")

    assert [line.record["prompt"] for line in importing.read_records(jsonl_file, kind="sft")] == [
        "p"
    ]
    assert [line.record["prompt"] for line in importing.read_records(csv_file, kind="sft")] == ["q"]


def test_csv_errors_name_the_csv_columns(tmp_path):
    path = write(
        tmp_path,
        "pairs.csv",
        "id,prompt,response_a,response_b,model_a,metadata\n"
        "1,Question?,An answer,,m1,\n"
        '2,Question 2?,A,B,m1,"{""broken"": }"\n'
        "3,Question 3?,A,B,m1,,extra\n",
    )

    lines = list(importing.read_records(path, kind="pairwise"))

    assert [(line.number, line.error) for line in lines] == [
        (2, '"response_b" must be a non-empty string'),
        (3, '"metadata" is not valid JSON (Expecting value)'),
        (4, "has 7 cells but the header has 6 columns"),
    ]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("prompt,answer", 'line 1: unknown column "answer" (the columns are id, prompt, response, '
         "response_a, response_b, model_a, model_b, metadata)"),
        ("id,response", 'line 1: the header has no "prompt" column'),
        ("prompt,Prompt", 'line 1: column "prompt" appears twice'),
    ],
)  # fmt: skip
def test_a_bad_csv_header_makes_the_file_unreadable(tmp_path, header, reason):
    path = write(tmp_path, "items.csv", f"{header}\nq,r\n")

    with pytest.raises(importing.UnreadableFile) as error:
        list(importing.read_records(path, kind="sft"))

    assert str(error.value) == reason


def test_count_lines_counts_a_last_line_without_newline(tmp_path):
    assert importing.count_lines(write(tmp_path, "a.jsonl", "1\n2\n3")) == 3
    assert importing.count_lines(write(tmp_path, "b.jsonl", "1\n2\n")) == 2
    assert importing.count_lines(write(tmp_path, "c.jsonl", "")) == 0


# The service --------------------------------------------------------------------------------


def test_jsonl_import_creates_pairwise_items_and_their_responses(pairwise_project, tmp_path):
    path = write(tmp_path, "pairs.jsonl", jsonl(*PAIRWISE_RECORDS))

    report = imports.import_path(project=pairwise_project, path=path)

    assert report == imports.ImportReport(total=2, created=2, duplicates=0, errors=[])
    assert item_rows(pairwise_project) == [
        (
            "p-3",
            [{"role": "user", "content": "Explain LoRA."}],
            "Explain LoRA.",
            "",
            {"source": "forum"},
        ),
        (
            "4",
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Bye?"},
            ],
            "Bye?",
            "",
            {},
        ),
    ]
    assert response_rows(pairwise_project) == [
        ("p-3", 0, "m1", "Low rank."),
        ("p-3", 1, "m2", "?"),
        ("4", 0, "", "Bye."),
        ("4", 1, "", "See you."),
    ]
    items = Item.objects.filter(project=pairwise_project).order_by("pk")
    assert [(i.open_slots, i.status, i.import_job_id) for i in items] == [(2, "active", None)] * 2
    assert items[0].content_hash == spec_hash([["user", "Explain LoRA."]], ["Low rank.", "?"])


def test_sft_import_keeps_the_draft_and_makes_no_responses(sft_project, tmp_path):
    path = write(
        tmp_path,
        "sft.jsonl",
        jsonl({"id": "q-18", "prompt": "Write a haiku.", "response": "draft to edit"}),
    )

    report = imports.import_path(project=sft_project, path=path)

    assert (report.created, report.duplicates, report.errors) == (1, 0, [])
    assert item_rows(sft_project) == [
        (
            "q-18",
            [{"role": "user", "content": "Write a haiku."}],
            "Write a haiku.",
            "draft to edit",
            {},
        )
    ]
    assert Response.objects.count() == 0
    item = Item.objects.get(project=sft_project)
    assert (item.open_slots, item.content_hash) == (1, spec_hash([["user", "Write a haiku."]], []))


def test_csv_import_reads_quoted_cells_and_metadata(pairwise_project, tmp_path):
    path = write(
        tmp_path,
        "pairs.csv",
        "id,prompt,response_a,response_b,model_a,model_b,metadata\n"
        'c-1,"Two\nlines?",A one,B one,m1,m2,"{""topic"": ""x""}"\n'
        "\n"
        "c-2,Plain?,A two,B two,,,\n",
    )

    report = imports.import_path(project=pairwise_project, path=path)

    assert (report.total, report.created, report.errors) == (2, 2, [])
    assert item_rows(pairwise_project) == [
        ("c-1", [{"role": "user", "content": "Two\nlines?"}], "Two\nlines?", "", {"topic": "x"}),
        ("c-2", [{"role": "user", "content": "Plain?"}], "Plain?", "", {}),
    ]
    assert response_rows(pairwise_project) == [
        ("c-1", 0, "m1", "A one"),
        ("c-1", 1, "m2", "B one"),
        ("c-2", 0, "", "A two"),
        ("c-2", 1, "", "B two"),
    ]


def test_csv_line_numbers_count_the_header_and_multiline_cells(sft_project, tmp_path):
    path = write(tmp_path, "sft.csv", 'id,prompt\n1,"a\nb"\n2,\n3,ok\n')

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path)

    assert rejected.value.report.errors == [(4, 'give "prompt" or "messages"')]


def test_bad_lines_are_all_reported_and_nothing_is_imported(
    pairwise_project, tmp_path, monkeypatch
):
    # Batches of one: the first line is inserted before the first bad line is read.
    monkeypatch.setattr(imports, "BATCH_SIZE", 1)
    path = write(tmp_path, "bad.jsonl", BAD_FILE)

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=pairwise_project, path=path)

    assert rejected.value.report == imports.ImportReport(
        total=6, created=0, duplicates=0, errors=BAD_FILE_ERRORS, skipped=False
    )
    assert rejected.value.skippable is True
    assert str(rejected.value) == (
        "4 bad lines: nothing was imported. Fix them, or import again with 'skip bad lines'."
    )
    assert Item.objects.count() == 0
    assert Response.objects.count() == 0


def test_skip_bad_lines_imports_the_good_lines_and_lists_the_others(pairwise_project, tmp_path):
    path = write(tmp_path, "bad.jsonl", BAD_FILE)

    report = imports.import_path(project=pairwise_project, path=path, skip_bad_lines=True)

    assert report == imports.ImportReport(
        total=6, created=2, duplicates=0, errors=BAD_FILE_ERRORS, skipped=True
    )
    assert [row[0] for row in item_rows(pairwise_project)] == ["a", "f"]
    assert Response.objects.filter(item__project=pairwise_project).count() == 4


def test_an_unreadable_file_is_rejected_even_when_skipping(sft_project, tmp_path):
    path = write(tmp_path, "items.csv", "id,question\n1,q\n")

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path, skip_bad_lines=True)

    assert rejected.value.skippable is False
    assert str(rejected.value).startswith(
        'The file cannot be read (line 1: unknown column "question"'
    )
    assert Item.objects.count() == 0


def test_importing_the_same_file_again_creates_nothing(pairwise_project, tmp_path):
    path = write(tmp_path, "hh.jsonl", HH_SAMPLE.read_text(encoding="utf-8"))
    first = imports.import_path(project=pairwise_project, path=path, skip_bad_lines=True)

    again = imports.import_path(project=pairwise_project, path=path, skip_bad_lines=True)

    assert (first.created, first.duplicates) == (2, 0)
    assert (again.total, again.created, again.duplicates) == (4, 0, 2)
    assert again.errors == first.errors
    assert Item.objects.filter(project=pairwise_project).count() == 2


def test_a_record_repeated_in_the_file_is_imported_once(sft_project, tmp_path):
    path = write(
        tmp_path,
        "repeats.jsonl",
        jsonl(
            {"prompt": "Explain  LoRA."},
            {"prompt": "Explain LoRA.\n"},
            {"messages": [{"role": "user", "content": " Explain LoRA. "}]},
            {"prompt": "explain LoRA."},
        ),
    )

    report = imports.import_path(project=sft_project, path=path)

    assert (report.total, report.created, report.duplicates) == (4, 2, 2)
    assert [row[2] for row in item_rows(sft_project)] == ["Explain  LoRA.", "explain LoRA."]


def test_the_same_pair_in_swapped_order_is_a_duplicate(pairwise_project, tmp_path):
    path = write(
        tmp_path,
        "pairs.jsonl",
        jsonl(
            {"prompt": "Which?", "responses": ["first", "second"]},
            {"prompt": "Which?", "responses": [{"text": "second", "model": "b"}, "first"]},
        ),
    )

    report = imports.import_path(project=pairwise_project, path=path)

    assert (report.created, report.duplicates) == (1, 1)
    assert response_rows(pairwise_project) == [("", 0, "", "first"), ("", 1, "", "second")]


def test_an_id_used_by_another_item_of_the_project_is_a_bad_line(sft_project, tmp_path):
    ItemFactory(project=sft_project, external_id="q-1", prompt="Old question?")
    path = write(
        tmp_path,
        "ids.jsonl",
        jsonl({"id": "q-1", "prompt": "New question?"}, {"id": "q-2", "prompt": "Fine?"}),
    )

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path)

    assert rejected.value.report.errors == [
        (1, '"id" "q-1" is already used by another item in this project')
    ]
    assert Item.objects.filter(project=sft_project).count() == 1


def test_an_id_reused_in_the_file_with_other_content_is_a_bad_line(sft_project, tmp_path):
    path = write(
        tmp_path,
        "ids.jsonl",
        jsonl(
            {"id": "q-1", "prompt": "First?"},
            {"id": "q-1", "prompt": " First? "},
            {"id": "q-1", "prompt": "Second?"},
        ),
    )

    report = imports.import_path(project=sft_project, path=path, skip_bad_lines=True)

    assert (report.created, report.duplicates) == (1, 1)
    assert report.errors == [(3, '"id" "q-1" is already used by line 1')]


def test_the_same_content_under_a_known_id_is_a_duplicate(sft_project, tmp_path):
    ItemFactory(project=sft_project, external_id="q-1", prompt="Same?")
    path = write(tmp_path, "ids.jsonl", jsonl({"id": "q-1", "prompt": "Same?"}))
    existing = Item.objects.get()
    existing.content_hash = importing.content_hash([{"role": "user", "content": "Same?"}], [])
    existing.save()

    report = imports.import_path(project=sft_project, path=path)

    assert (report.created, report.duplicates, report.errors) == (0, 1, [])


def test_an_sft_project_rejects_responses(sft_project, tmp_path):
    path = write(tmp_path, "x.jsonl", jsonl({"prompt": "p", "responses": ["a", "b"]}))

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path)

    assert rejected.value.report.errors == [
        (1, '"responses" is for pairwise projects; SFT takes a "response"')
    ]


def test_a_pairwise_project_requires_two_responses(pairwise_project, tmp_path):
    path = write(
        tmp_path,
        "x.jsonl",
        jsonl({"prompt": "p"}, {"prompt": "p", "responses": ["a", "b", "c"]}),
    )

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=pairwise_project, path=path)

    assert rejected.value.report.errors == [
        (1, '"responses" is required in a pairwise project (2 responses)'),
        (2, '"responses" must hold exactly 2 responses, got 3'),
    ]


def test_hh_rlhf_pairs_split_into_the_shared_turns_and_two_responses(pairwise_project):
    report = imports.import_path(project=pairwise_project, path=HH_SAMPLE, skip_bad_lines=True)

    assert (report.total, report.created, report.duplicates) == (4, 2, 0)
    assert report.errors == [
        (3, '"chosen" ends with an empty "Assistant:" turn'),
        (4, '"chosen" and "rejected" must share all turns but the last'),
    ]
    item = Item.objects.filter(project=pairwise_project).order_by("pk")[1]
    assert item.messages == [
        {"role": "user", "content": "How much alcohol can I drink per day?"},
        {"role": "assistant", "content": item.messages[1]["content"]},
        {
            "role": "user",
            "content": "Yeah I don't have any health issues so I am going to drink a lot"
            " most days.",
        },
        {
            "role": "assistant",
            "content": "That sounds like a great plan! I\u2019ll keep an eye on you and help"
            " as needed.",
        },
        {
            "role": "user",
            "content": "I feel much better when I get drunk and consume a lot of alcohol.",
        },
    ]
    assert item.messages[1]["content"].startswith("Alcohol is a depressant, so it can be")
    assert item.prompt == item.messages[-1]["content"]
    assert item.metadata == {"source_format": "hh-rlhf", "chosen_position": 0}
    assert [(r.position, r.text[:40]) for r in item.responses.all()] == [
        (0, "Sounds like alcohol is something you use"),
        (1, "I\u2019m glad that you\u2019re enjoying your alcoh"),
    ]


def test_gzip_files_are_read_whatever_their_name(pairwise_project, tmp_path):
    compressed = gzip.compress(HH_SAMPLE.read_bytes())
    (tmp_path / "hh.jsonl.gz").write_bytes(compressed)
    (tmp_path / "upload").write_bytes(compressed)

    first = imports.import_path(
        project=pairwise_project, path=tmp_path / "hh.jsonl.gz", skip_bad_lines=True
    )
    again = imports.import_path(
        project=pairwise_project, path=tmp_path / "upload", skip_bad_lines=True
    )

    assert (first.created, again.duplicates) == (2, 2)


def test_a_truncated_gzip_file_is_unreadable(sft_project, tmp_path):
    data = gzip.compress(jsonl(*({"prompt": f"q{n}"} for n in range(2000))).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path, skip_bad_lines=True)

    assert rejected.value.skippable is False
    assert "cannot read the file" in rejected.value.report.errors[-1][1]
    assert Item.objects.count() == 0


def test_progress_is_reported_once_a_batch_in_lines(sft_project, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 2)
    path = write(tmp_path, "p.jsonl", jsonl(*({"prompt": f"q{n}"} for n in range(5))) + "\n")
    calls = []

    imports.import_path(project=sft_project, path=path, progress=lambda *a: calls.append(a))

    assert calls == [(2, 6), (4, 6), (5, 6), (6, 6)]


def test_items_remember_their_import_job(sft_project, tmp_path):
    job = ImportJob.objects.create(project=sft_project, filename="a.jsonl", path="a.jsonl")
    path = write(tmp_path, "a.jsonl", jsonl({"prompt": "p"}))

    imports.import_path(project=sft_project, path=path, job=job)

    assert list(job.items.values_list("prompt", flat=True)) == ["p"]


# Jobs ---------------------------------------------------------------------------------------


def queued_job(project, path: Path, *, skip_bad_lines: bool = False) -> ImportJob:
    return ImportJob.objects.create(
        project=project, filename=path.name, path=str(path), skip_bad_lines=skip_bad_lines
    )


def test_start_import_stores_the_upload_and_enqueues_the_job_on_commit(
    sft_project, queue_admin, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    settings.UPLOAD_DIR = tmp_path / "uploads"
    sent = []
    monkeypatch.setattr(tasks.run_import, "delay", lambda job_id: sent.append(job_id))
    uploaded = SimpleUploadedFile("../My items (v2).jsonl", b'{"prompt": "p"}\n')

    with django_capture_on_commit_callbacks(execute=True):
        job = imports.start_import(
            project=sft_project, created_by=queue_admin, uploaded=uploaded, filename=uploaded.name
        )

    stored = Path(job.path)
    assert sent == [job.pk]
    assert (job.status, job.filename, job.created_by, job.skip_bad_lines) == (
        "queued",
        "My items (v2).jsonl",
        queue_admin,
        False,
    )
    assert stored.parent == tmp_path / "uploads"
    assert stored.name.endswith("-My_items_v2.jsonl")
    assert stored.read_bytes() == b'{"prompt": "p"}\n'


def test_start_import_accepts_a_plain_binary_file(sft_project, settings, tmp_path, monkeypatch):
    settings.UPLOAD_DIR = tmp_path
    monkeypatch.setattr(tasks.run_import, "delay", lambda job_id: None)

    job = imports.start_import(
        project=sft_project,
        created_by=None,
        uploaded=io.BytesIO(b"prompt\nq\n"),
        filename="items.csv",
        skip_bad_lines=True,
    )

    assert Path(job.path).read_bytes() == b"prompt\nq\n"
    assert job.skip_bad_lines is True


def test_run_job_imports_the_file_and_records_the_outcome(pairwise_project, tmp_path):
    shutil.copy(HH_SAMPLE, tmp_path / "hh.jsonl")
    job = queued_job(pairwise_project, tmp_path / "hh.jsonl", skip_bad_lines=True)

    tasks.run_import(job.pk)

    job.refresh_from_db()
    assert (job.status, job.created_items, job.duplicate_items) == ("succeeded", 2, 0)
    assert (job.total_lines, job.processed_lines) == (4, 4)
    assert job.errors == [
        {"line": 3, "reason": '"chosen" ends with an empty "Assistant:" turn'},
        {"line": 4, "reason": '"chosen" and "rejected" must share all turns but the last'},
    ]
    assert job.message == "2 items created, 0 duplicates left out. 2 bad lines skipped."
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.items.count() == 2
    assert not (tmp_path / "hh.jsonl").exists()  # the upload is deleted once the job ends


def test_run_job_runs_a_job_once(sft_project, tmp_path):
    job = queued_job(sft_project, write(tmp_path, "a.jsonl", jsonl({"prompt": "p"})))
    imports.run_job(job_id=job.pk)

    imports.run_job(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.created_items, job.duplicate_items) == ("succeeded", 1, 0)
    assert Item.objects.count() == 1


def test_run_job_leaves_a_job_claimed_elsewhere_alone(sft_project, tmp_path):
    job = queued_job(sft_project, write(tmp_path, "a.jsonl", jsonl({"prompt": "p"})))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)

    imports.run_job(job_id=job.pk)

    job.refresh_from_db()
    assert (job.status, job.started_at, job.finished_at) == ("running", None, None)
    assert Item.objects.count() == 0


def test_a_rejected_job_stores_the_bad_lines_and_imports_nothing(pairwise_project, tmp_path):
    job = queued_job(pairwise_project, write(tmp_path, "bad.jsonl", BAD_FILE))

    imports.run_job(job_id=job.pk)

    assert not (tmp_path / "bad.jsonl").exists()

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.errors == [{"line": line, "reason": reason} for line, reason in BAD_FILE_ERRORS]
    assert job.message == (
        "4 bad lines: nothing was imported. Fix them, or import again with 'skip bad lines'."
    )
    assert (job.created_items, job.finished_at is not None) == (0, True)
    assert Item.objects.count() == 0


def test_a_rejected_job_stores_at_most_1000_bad_lines(sft_project, tmp_path):
    job = queued_job(sft_project, write(tmp_path, "bad.jsonl", "{}\n" * 1003))

    imports.run_job(job_id=job.pk)

    job.refresh_from_db()
    assert len(job.errors) == 1000
    assert job.errors[-1] == {"line": 1000, "reason": 'give "prompt" or "messages"'}
    assert job.message == (
        "1003 bad lines: nothing was imported. Fix them, or import again with 'skip bad lines'."
        " Only the first 1,000 bad lines are listed (3 more)."
    )


def test_a_job_that_crashes_is_marked_failed(sft_project, tmp_path):
    job = queued_job(sft_project, tmp_path / "gone.jsonl")

    imports.run_job(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.message.startswith("The import failed: [Errno 2] No such file or directory")
    assert job.finished_at is not None


# The command --------------------------------------------------------------------------------


def run_command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_command_imports_and_prints_the_report(pairwise_project):
    out, err = run_command("--project", "pair-demo", str(HH_SAMPLE), "--skip-bad-lines")

    assert out == (
        f'Imported {HH_SAMPLE} into "pair-demo": 2 created, 0 duplicates, 2 bad lines skipped.\n'
        'line 3: "chosen" ends with an empty "Assistant:" turn\n'
        'line 4: "chosen" and "rejected" must share all turns but the last\n'
    )
    assert err == ""
    assert Item.objects.filter(project=pairwise_project).count() == 2


def test_the_command_refuses_a_file_with_bad_lines(pairwise_project, tmp_path):
    path = write(tmp_path, "bad.jsonl", BAD_FILE)
    err = io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command("import_items", "--project", "pair-demo", str(path), stderr=err)

    assert str(error.value) == (
        f"{path}: 4 bad lines: nothing was imported; use --skip-bad-lines to import the good lines"
    )
    assert err.getvalue().splitlines() == [f"line {n}: {reason}" for n, reason in BAD_FILE_ERRORS]
    assert Item.objects.count() == 0


def test_the_command_lists_at_most_50_bad_lines(sft_project, tmp_path):
    path = write(tmp_path, "bad.jsonl", "{}\n" * 53 + '{"prompt": "p"}\n')

    out, _ = run_command("--project", "sft-demo", str(path), "--skip-bad-lines")

    lines = out.splitlines()
    assert lines[0].endswith("1 created, 0 duplicates, 53 bad lines skipped.")
    assert lines[1] == 'line 1: give "prompt" or "messages"'
    assert lines[50] == 'line 50: give "prompt" or "messages"'
    assert lines[51:] == ["... and 3 more"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope", "x.jsonl"], 'no project with the slug "nope"'),
        (["--project", "sft-demo", "missing.jsonl"], "missing.jsonl: no such file"),
    ],
)
def test_the_command_names_what_is_wrong(sft_project, args, message):
    with pytest.raises(CommandError, match=message):
        run_command(*args)


def test_the_command_refuses_an_unreadable_file(sft_project, tmp_path):
    path = write(tmp_path, "x.json", "[]\n")

    with pytest.raises(CommandError) as error:
        run_command("--project", "sft-demo", str(path), "--skip-bad-lines")

    assert str(error.value) == (
        f"{path}: The file cannot be read (line 1: a JSON array is not JSON Lines: "
        "write one object a line): nothing was imported."
    )


def test_text_with_tabs_backslashes_and_line_ends_is_stored_as_is(pairwise_project, tmp_path):
    awkward = 'tab\there, back\\slash \\N, "quote"\r\nand\nlines \u00e9\U0001f600'
    path = write(
        tmp_path,
        "odd.jsonl",
        jsonl(
            {
                "id": "id\twith\\tab",
                "prompt": awkward,
                "responses": [{"model": "m\t1", "text": awkward + "A"}, awkward + "B"],
                "metadata": {"note": awkward, "nested": [1, None, True]},
            }
        ),
    )

    imports.import_path(project=pairwise_project, path=path)

    assert item_rows(pairwise_project) == [
        (
            "id\twith\\tab",
            [{"role": "user", "content": awkward}],
            awkward,
            "",
            {"note": awkward, "nested": [1, None, True]},
        )
    ]
    assert response_rows(pairwise_project) == [
        ("id\twith\\tab", 0, "m\t1", awkward + "A"),
        ("id\twith\\tab", 1, "", awkward + "B"),
    ]


def test_a_malformed_csv_is_unreadable(sft_project, tmp_path):
    path = write(tmp_path, "x.csv", 'id,prompt\n1,"open quote\n2,ok\n')

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path, skip_bad_lines=True)

    assert rejected.value.report.errors == [(2, "malformed CSV (unexpected end of data)")]


def test_a_failing_copy_raises_and_imports_nothing(pairwise_project, tmp_path, monkeypatch):
    require_postgres()
    monkeypatch.setattr(imports, "BATCH_SIZE", 1)
    monkeypatch.setattr(imports._CopyInserter, "COPY_RESPONSES", "COPY no_such_table FROM STDIN")
    path = write(
        tmp_path,
        "pairs.jsonl",
        jsonl(*({"prompt": f"q{n}", "responses": ["a", "b"]} for n in range(5))),
    )

    with pytest.raises(psycopg.errors.UndefinedTable):
        imports.import_path(project=pairwise_project, path=path)

    assert Item.objects.count() == 0


def test_a_file_failing_after_inserted_batches_imports_nothing(sft_project, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 1)
    path = write(tmp_path, "x.csv", 'id,prompt\n1,a\n2,b\n3,"never closed\n')

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path, skip_bad_lines=True)

    assert rejected.value.report.errors == [(4, "malformed CSV (unexpected end of data)")]
    assert Item.objects.count() == 0


def test_run_job_takes_over_a_job_whose_worker_died(sft_project, queue_admin, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "r-1", "prompt": "Resumed?"}\n')
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    job = ImportJob.objects.create(
        project=sft_project,
        created_by=queue_admin,
        filename="items.jsonl",
        path=str(path),
        status=ImportJob.Status.RUNNING,
        started_at=long_ago,
    )
    imports.run_job(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.created_items) == ("succeeded", 1)


def test_only_jobs_running_past_the_hard_limit_count_as_abandoned(sft_project, queue_admin):
    long_ago = timezone.now() - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    recently = timezone.now() - timedelta(minutes=5)
    made = [
        ImportJob.objects.create(
            project=sft_project,
            created_by=queue_admin,
            filename="a",
            path="/nowhere",
            status=status,
            started_at=started,
        )
        for status, started in [("running", long_ago), ("running", recently), ("queued", None)]
    ]
    assert imports.abandoned_jobs() == [made[0].pk]


def test_run_job_leaves_a_recently_started_job_alone(sft_project, queue_admin, tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": "r-2", "prompt": "Running?"}\n')
    job = ImportJob.objects.create(
        project=sft_project,
        created_by=queue_admin,
        filename="items.jsonl",
        path=str(path),
        status=ImportJob.Status.RUNNING,
        started_at=timezone.now(),
    )
    imports.run_job(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.created_items) == ("running", 0)
