"""Parquet import: the same records as JSON Lines, row numbers in errors, unreadable files."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labeling import importing
from labeling.models import Item, Response
from labeling.services import imports


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)
    return path


def test_pairwise_rows_with_struct_responses_and_json_metadata(pairwise_project, tmp_path):
    path = write_parquet(
        tmp_path / "pairs.parquet",
        [
            {
                "id": "p-1",
                "prompt": "Explain LoRA.",
                "responses": [{"model": "m1", "text": "Low rank."}, {"model": "m2", "text": "?"}],
                "metadata": '{"source": "forum", "score": 3}',
            },
            {
                "id": "p-2",
                "prompt": "Two?",
                "responses": [{"model": "m1", "text": "A"}, {"model": None, "text": "B"}],
                "metadata": None,
            },
        ],
    )

    report = imports.import_path(project=pairwise_project, path=path)

    assert report == imports.ImportReport(total=2, created=2, duplicates=0, errors=[])
    items = Item.objects.filter(project=pairwise_project).order_by("external_id")
    assert [(i.external_id, i.prompt, i.metadata) for i in items] == [
        ("p-1", "Explain LoRA.", {"source": "forum", "score": 3}),
        ("p-2", "Two?", {}),
    ]
    assert list(
        Response.objects.order_by("item__external_id", "position").values_list(
            "item__external_id", "position", "model", "text"
        )
    ) == [
        ("p-1", 0, "m1", "Low rank."),
        ("p-1", 1, "m2", "?"),
        ("p-2", 0, "m1", "A"),
        ("p-2", 1, "", "B"),
    ]
    # The same content as JSON Lines gives the same hash: a re-import as JSONL adds nothing.
    assert items[1].content_hash == importing.content_hash(
        [{"role": "user", "content": "Two?"}], ["A", "B"]
    )


def test_sft_rows_with_messages_and_struct_metadata(sft_project, tmp_path):
    path = write_parquet(
        tmp_path / "upload",  # no suffix: the magic number tells
        [
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi?"},
                ],
                "response": "Hello.",
                "metadata": {"source": "chat", "turns": 1},
            }
        ],
    )

    report = imports.import_path(project=sft_project, path=path)

    assert (report.created, report.errors) == (1, [])
    item = Item.objects.get(project=sft_project)
    assert (item.prompt, item.draft_response, item.metadata) == (
        "Hi?",
        "Hello.",
        {"source": "chat", "turns": 1},
    )
    assert importing.count_lines(path) == 1


def test_bad_rows_are_reported_by_row_number_and_nothing_is_imported(sft_project, tmp_path):
    path = write_parquet(
        tmp_path / "bad.parquet",
        [
            {"id": "a", "prompt": "Fine?", "metadata": None, "score": 1.0},
            {"id": "b", "prompt": "", "metadata": None, "score": 1.0},
            {"id": "c", "prompt": "Three?", "metadata": "{not json", "score": 1.0},
            {"id": "d", "prompt": "Four?", "metadata": None, "score": 2.0},
        ],
    )

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path)

    assert rejected.value.report.errors == [
        (
            1,
            'unknown field "score" (the fields are id, prompt, messages, response, responses, '
            "metadata)",
        ),
        (
            2,
            'unknown field "score" (the fields are id, prompt, messages, response, responses, '
            "metadata)",
        ),
        (3, '"metadata" is not valid JSON (Expecting property name enclosed in double quotes)'),
        (
            4,
            'unknown field "score" (the fields are id, prompt, messages, response, responses, '
            "metadata)",
        ),
    ]
    assert Item.objects.count() == 0


def test_values_json_cannot_hold_name_their_field(sft_project, tmp_path):
    path = write_parquet(
        tmp_path / "odd.parquet",
        [
            {"prompt": "A?", "metadata": {"weight": float("nan")}},
            {"prompt": "B?", "metadata": None},
        ],
    )

    with pytest.raises(imports.ImportRejected) as rejected:
        imports.import_path(project=sft_project, path=path)

    assert rejected.value.report.errors == [
        (1, '"metadata.weight" is nan, which is not a JSON value')
    ]


def test_a_truncated_parquet_file_is_unreadable(sft_project, tmp_path):
    path = write_parquet(tmp_path / "cut.parquet", [{"prompt": f"Q{n}?"} for n in range(10)])
    path.write_bytes(path.read_bytes()[:-20])

    with pytest.raises(importing.UnreadableFile) as error:
        list(importing.read_records(path, kind="sft"))

    assert error.value.line == 1
    assert error.value.reason.startswith("not a readable Parquet file (")
