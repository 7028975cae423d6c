"""What an export leaves on disk: layouts, manifest, card, splits, atomicity, re-runs."""

import hashlib
import json

import pytest

import annotate
from exports import formats
from exports.errors import NoRows, OutputError
from exports.models import Export, ExportIsFinal
from exports.options import ExportOptions
from exports.services import run_export
from tests.exports.builders import annotators, export, pair_item, rows, vote
from tests.factories import PairwiseProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def single_votes(db):
    """A project wanting one judgement per pair, and 40 pairs judged once (A wins)."""
    project = PairwiseProjectFactory(slug="single", name="Single votes", overlap=1)
    [judge] = annotators("judge")
    for n in range(40):
        vote(pair_item(project, f"p{n}", f"Prompt {n}?"), judge, "a", minutes=n)
    return project


def ids(path) -> set[str]:
    return {row["id"] for row in rows(path)}


def test_file_output_gets_a_manifest_and_a_card_beside_it(single_votes, tmp_path):
    record = export(single_votes, tmp_path / "pairs.jsonl")
    data = (tmp_path / "pairs.jsonl").read_bytes()
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pairs.README.md",
        "pairs.jsonl",
        "pairs.manifest.json",
    ]
    assert manifest["files"] == {
        "pairs.jsonl": {"sha256": hashlib.sha256(data).hexdigest(), "rows": 40, "bytes": len(data)}
    }
    assert manifest["counts"] == {"train": 40}
    assert manifest["dropped"] == record.dropped
    assert (manifest["format"], manifest["style"], manifest["bare"]) == (
        "dpo",
        "conversational",
        False,
    )
    assert manifest["policy"] == {
        "min_votes": 1,
        "min_agreement": 0.5,
        "ties": "exclude",
        "per_annotator": False,
    }
    assert manifest["guideline_versions"] == [None]
    assert (manifest["annotators"], manifest["agreement"]) == (
        1,
        {"pairs": 40, "mean_agreement": 1.0, "unanimous": 40},
    )
    assert manifest["tool"] == {"name": "annotate", "version": annotate.__version__}
    assert (manifest["export_id"], manifest["project"]) == (
        record.pk,
        {"slug": "single", "kind": "pairwise"},
    )
    assert manifest["created_at"] == record.created_at.isoformat()


def test_export_record_holds_counts_files_and_policy(single_votes, tmp_path):
    record = export(single_votes, tmp_path / "pairs.jsonl", style="standard")
    data = (tmp_path / "pairs.jsonl").read_bytes()
    assert (record.status, record.format, record.style, record.error) == (
        "succeeded",
        "dpo",
        "standard",
        "",
    )
    assert record.counts == {"train": 40}
    assert record.files["pairs.jsonl"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert record.policy["policy"]["min_votes"] == 1
    assert record.finished_at is not None


def test_a_finished_export_cannot_change(single_votes, tmp_path):
    record = export(single_votes, tmp_path / "pairs.jsonl")
    record.counts = {"train": 1}
    with pytest.raises(ExportIsFinal):
        record.save()
    assert Export.objects.get(pk=record.pk).counts == {"train": 40}


CARD = """---
configs:
- config_name: default
  data_files:
  - split: "train"
    path: "pairs.jsonl"
---

# Single votes: `dpo` export

Preference pairs (prompt, chosen, rejected) for DPO, exported from the pairwise project `single` \
by annotate. JSON Lines, UTF-8, one row a line; the manifest beside this card holds each file's \
SHA-256.

## How it was labeled

Annotators compared two responses to each prompt, shown in random order, and chose the better \
one (or a tie, or both bad) with a strength from 1 to 3. Annotations wanted per item: 1. \
After the filters: 1 annotators, guideline versions none.

## How it was aggregated

- Per item with at least 1 judgements, the majority of the counted votes decides, with an \
agreement of at least 50%; as many votes for A as for B give no pair.
- Ties and both-bad votes are not counted.
- The margin is the mean strength (1 to 3) of the votes for the chosen response.
- Items marked duplicate or filtered are left out.

## Counts

| file | rows |
|---|---|
| `pairs.jsonl` | 40 |

## Left out

| counted in | rule | left out |
|---|---|---|
| annotations | `item_status` | 0 |
| annotations | `non_decisive` | 0 |
| items | `missing_responses` | 0 |
| items | `min_votes` | 0 |
| items | `no_majority` | 0 |
| items | `min_agreement` | 0 |

## Sample row

```json
{
  "chosen": [
    {
      "content": "A: Prompt 0?",
      "role": "assistant"
    }
  ],
  "prompt": [
    {
      "content": "Prompt 0?",
      "role": "user"
    }
  ],
  "rejected": [
    {
      "content": "B: Prompt 0?",
      "role": "assistant"
    }
  ]
}
```
"""


def test_card_describes_the_export_and_shows_a_sample_row(single_votes, tmp_path):
    export(single_votes, tmp_path / "pairs.jsonl", bare=True)
    assert (tmp_path / "pairs.README.md").read_text() == CARD


def test_card_sample_fence_outlasts_backticks_in_the_row(db, tmp_path):
    project = PairwiseProjectFactory(slug="ticks", overlap=1)
    [judge] = annotators("judge")
    vote(pair_item(project, "t1", "Close the fence: ``` and ````?"), judge, "a")
    export(project, tmp_path / "pairs.jsonl", bare=True)
    card = (tmp_path / "pairs.README.md").read_text()
    assert "\n`````json\n{" in card
    assert card.endswith("\n`````\n")


def test_re_export_of_unchanged_data_is_byte_identical(single_votes, tmp_path):
    first = export(single_votes, tmp_path / "out/", splits=(("test", 0.2),))
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    second = export(single_votes, tmp_path / "out/", force=True, splits=(("test", 0.2),))
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert sorted(after) == ["README.md", "manifest.json", "test.jsonl", "train.jsonl"]
    for name in ("README.md", "test.jsonl", "train.jsonl"):
        assert after[name] == before[name], name
    volatile = {"export_id", "created_at"}
    first_manifest, second_manifest = (
        json.loads(before["manifest.json"]),
        json.loads(after["manifest.json"]),
    )
    assert {k: v for k, v in first_manifest.items() if k not in volatile} == {
        k: v for k, v in second_manifest.items() if k not in volatile
    }
    assert (first_manifest["export_id"], second_manifest["export_id"]) == (first.pk, second.pk)


def test_split_directory_holds_one_file_per_split(single_votes, tmp_path):
    record = export(single_votes, tmp_path / "out", splits=(("test", 0.25),))
    train, test = ids(tmp_path / "out/train.jsonl"), ids(tmp_path / "out/test.jsonl")
    assert record.counts == {"train": len(train), "test": len(test)}
    assert len(train | test) == 40
    assert not train & test
    assert 0 < len(test) < 20
    card = (tmp_path / "out/README.md").read_text()
    assert '  - split: "test"\n    path: "test.jsonl"\n' in card


def test_items_stay_in_their_split_when_the_project_grows(single_votes, tmp_path):
    export(single_votes, tmp_path / "before", splits=(("test", 0.3),))
    [judge] = annotators("judge")
    for n in range(40, 80):
        vote(pair_item(single_votes, f"p{n}", f"Prompt {n}?"), judge, "b", minutes=n)
    export(single_votes, tmp_path / "after", splits=(("test", 0.3),))
    for split in ("train", "test"):
        before, after = (
            ids(tmp_path / f"before/{split}.jsonl"),
            ids(tmp_path / f"after/{split}.jsonl"),
        )
        assert before
        assert before < after


def test_duplicate_prompts_never_straddle_train_and_test(db, tmp_path):
    project = PairwiseProjectFactory(slug="twins", overlap=1)
    [judge] = annotators("judge")
    for n in range(30):
        # The same prompt twice (other responses), once with different spacing.
        vote(pair_item(project, f"t{n}", f"Twin prompt {n}?"), judge, "a")
        vote(pair_item(project, f"u{n}", f"Twin  prompt {n}? ", tag="'"), judge, "b")
    export(project, tmp_path / "out", splits=(("test", 0.5),))
    train, test = ids(tmp_path / "out/train.jsonl"), ids(tmp_path / "out/test.jsonl")
    assert train
    assert test
    for n in range(30):
        assert ({f"t{n}", f"u{n}"} <= train) or ({f"t{n}", f"u{n}"} <= test)


def test_a_crash_mid_write_leaves_the_old_file_and_no_temporary(
    single_votes, tmp_path, monkeypatch
):
    target = tmp_path / "pairs.jsonl"
    target.write_bytes(b"old export\n")
    written = []

    def failing_encode(row):
        if len(written) == 5:
            raise RuntimeError("disk on fire")
        written.append(row)
        return encode(row)

    encode = formats.encode
    monkeypatch.setattr(formats, "encode", failing_encode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(single_votes, target, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.jsonl"]
    assert target.read_bytes() == b"old export\n"
    record = Export.objects.get()
    assert (record.status, record.error, record.counts) == ("failed", "disk on fire", {})


def test_existing_output_is_kept_without_force(single_votes, tmp_path):
    (tmp_path / "pairs.manifest.json").write_text("{}")
    with pytest.raises(OutputError, match=r"pairs.manifest.json already exists; add --force"):
        export(single_votes, tmp_path / "pairs.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs.manifest.json"]
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    ("output", "message"),
    [("-", "standard output takes one file"), ("data.jsonl", "give a directory, not")],
)
def test_split_exports_need_a_directory(single_votes, tmp_path, monkeypatch, output, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match=message):
        export(single_votes, output, splits=(("test", 0.1),))


def test_no_rows_leaves_no_file_and_a_failed_record(single_votes, tmp_path):
    with pytest.raises(NoRows):
        export(single_votes, tmp_path / "pairs.jsonl", min_votes=2)
    assert list(tmp_path.iterdir()) == []
    record = Export.objects.get()
    assert record.status == "failed"
    assert record.dropped["items"]["min_votes"] == 40
    assert record.error == "no rows to export: items left out by min_votes (40)"


def test_stdout_export_streams_the_rows_and_writes_no_file(single_votes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines: list[bytes] = []
    record = run_export(
        project=single_votes,
        options=ExportOptions(format="dpo", bare=True),
        output="-",
        emit=lines.append,
    )
    assert len(lines) == 40
    assert json.loads(lines[0]) == {
        "prompt": [{"role": "user", "content": "Prompt 0?"}],
        "chosen": [{"role": "assistant", "content": "A: Prompt 0?"}],
        "rejected": [{"role": "assistant", "content": "B: Prompt 0?"}],
    }
    assert (record.counts, record.files, record.path) == ({"train": 40}, {}, "-")
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_annotations_read(single_votes, tmp_path):
    seen: list[tuple[int, int]] = []
    run_export(
        project=single_votes,
        options=ExportOptions(format="dpo"),
        output=str(tmp_path / "pairs.jsonl"),
        progress=lambda done, total: seen.append((done, total)),
        chunk_size=7,
    )
    assert seen == [(n, 40) for n in range(1, 41)]


def test_the_record_keeps_the_absolute_output_path(single_votes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = export(single_votes, "nested/pairs.jsonl")
    assert record.path == str(tmp_path / "nested/pairs.jsonl")
    assert (tmp_path / "nested/pairs.manifest.json").exists()
