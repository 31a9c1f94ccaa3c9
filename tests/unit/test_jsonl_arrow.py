"""JSON lines through Arrow's reader (``pyarrow.json``): a flat or key-path file is parsed
without Python's ``json``, and every line lands as the text Python's line-by-line reading
gives (``json_records.as_text``), whichever of the two read its block; errors name the same
line in any block."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wharf import extract
from wharf.contract.dataset import DatasetSpec
from wharf.extract import jsonl_reader
from wharf.extract.json_records import RecordBatcher

COLUMNS = [
    {"name": "id", "data_type": "bigint"},
    {"name": "name", "data_type": "string"},
    {"name": "amount", "data_type": "double"},
    {"name": "day", "data_type": "date"},
    {"name": "seen_at", "data_type": "timestamp"},
    {"name": "active", "data_type": "boolean"},
    {"name": "city", "data_type": "string"},
]
PATHS = {"city": "$.customer.address.city"}


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))


def spec_of(path: Path, columns: list[dict[str, Any]] = COLUMNS, **source: Any) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "events",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", "format": "jsonl", "path": str(path), **source},
            "columns": columns,
        }
    )


def rows_of(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [row for batch in extract.read(spec).batches for row in batch.to_pylist()]


def python_rows(spec: DatasetSpec, path: Path) -> list[dict[str, Any]]:
    """What Python's json, line by line, lands: the reference the Arrow path must equal."""
    assert spec.source is not None
    batcher = RecordBatcher(spec, PATHS, 1000)
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    batches = [*batcher.add(records), *batcher.flush()]
    return [row for batch in batches for row in batch.to_pylist()]


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"customer {i}",
        "amount": round(i * 7.919, 2),
        "day": f"2026-01-{i % 28 + 1:02d}",
        "seen_at": f"2026-01-01T10:{i % 60:02d}:00Z",
        "active": i % 3 == 0,
        "customer": {"address": {"city": "Leeds"}} if i % 2 else {"name": "no address"},
    }


def test_a_flat_file_is_parsed_by_arrow_not_by_pythons_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(record(i)) + "\n" for i in range(1, 3001)))
    spec = spec_of(path, column_paths=PATHS, batch_size=1000)
    expected = python_rows(spec, path)
    monkeypatch.setattr(jsonl_reader.json, "loads", _refused)
    batches = list(extract.read(spec).batches)
    assert [row for batch in batches for row in batch.to_pylist()] == expected
    assert max(batch.num_rows for batch in batches) <= 1000
    assert expected[0] == {
        "id": "1",
        "name": "customer 1",
        "amount": "7.92",
        "day": "2026-01-02",  # text, not the timestamp Arrow would infer
        "seen_at": "2026-01-01T10:01:00Z",
        "active": "false",
        "city": "Leeds",
    }


def _refused(*args: object, **kwargs: object) -> None:
    raise AssertionError("Python's json parsed a line the Arrow path should have")


# Lines whose text Arrow cannot vouch for: each block holding one is read by Python's json.
ODD = [
    {"id": 1, "amount": 12},  # an integer among doubles: "12.0", the same double
    {"id": 2, "amount": 12.0, "name": 7},  # a number where the others are text
    {"id": 3, "name": ["a", {"b": None}], "city": "ignored"},  # an array lands as JSON
    {"id": 4, "name": {"z": 1, "a": [1.0, True]}},  # an object, its keys in its own order
    {"id": 123456789012345678901234, "amount": 2.5},  # past int64
    {"id": 6, "amount": 9007199254740993},  # an integer a double cannot hold
    {"id": 7, "customer": {"address": "not an object"}},
    {"id": 8, "active": None, "day": None},
    {"id": 9, "name": "é 😀 \u2028", "amount": 1e-7},
]


@pytest.mark.parametrize("odd", ODD, ids=[str(o["id"])[:4] for o in ODD])
def test_each_line_lands_as_pythons_json_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: dict[str, Any]
) -> None:
    monkeypatch.setattr(jsonl_reader, "_BLOCK_BYTES", 2000)  # many blocks, the odd one amid
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(record(i)) for i in range(1, 61)]
    lines.insert(31, json.dumps(odd))
    path.write_text("\n".join(lines) + "\n\n   \n")
    spec = spec_of(path, column_paths=PATHS)
    assert same_values(rows_of(spec)) == same_values(python_rows(spec, path))
    as_text = spec_of(path, [*COLUMNS[:2], {"name": "amount", "data_type": "string"}])
    assert rows_of(as_text)[31]["amount"] == python_rows(as_text, path)[31]["amount"]


def same_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with ``amount`` (a double column) as the double it parses to: Arrow reads
    ``12`` amid doubles as the double 12.0, which lands as "12.0" where Python's json, which
    keeps the integer, writes "12" (the same value for double, float and decimal columns;
    for any other type the block is read by Python)."""
    return [{**row, "amount": row["amount"] and float(row["amount"])} for row in rows]


def test_errors_name_the_line_in_whichever_block_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl_reader, "_BLOCK_BYTES", 1000)
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(record(i)) for i in range(1, 101)]
    for bad, message in [
        ('{"id": 1} {"id": 2}', "not valid JSON (Extra data at column 11)"),
        ('\ufeff{"id": 1}', "not valid JSON (Unexpected UTF-8 BOM"),
        # the column counts the line's newline, as a file's line has it
        ('{"id": 1, "id": 2', "not valid JSON (Expecting ',' delimiter at column 19)"),
        ("[1]", "expected a JSON object, found list"),
    ]:
        path.write_text("\n".join([*lines[:70], bad, *lines[70:]]) + "\n")
        with pytest.raises(ValueError) as failed:
            rows_of(spec_of(path))
        assert str(failed.value).startswith(f"{path}, line 71: {message}"), failed.value


def test_a_truncated_gzip_fails_after_its_last_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl.gz"
    whole = gzip.compress("".join(json.dumps(record(i)) + "\n" for i in range(1, 20001)).encode())
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"events.jsonl.gz, after line \d+: not a gzip file, or"):
        rows_of(spec_of(path))


def test_a_flat_file_is_read_without_importing_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas the first time it converts a Python object (``pa.scalar``):
    0.3 s or more and 45 MB that reading JSON lines through Arrow does not need."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(record(i)) + "\n" for i in range(1, 3001)))
    code = (
        "import json, sys\n"
        "from wharf import extract\n"
        "from wharf.contract.dataset import DatasetSpec\n"
        "spec = DatasetSpec.model_validate(json.loads(sys.argv[1]))\n"
        "rows = sum(batch.num_rows for batch in extract.read(spec).batches)\n"
        "print(rows, 'pandas' in sys.modules)\n"
    )
    spec = spec_of(path, column_paths=PATHS).model_dump(mode="json", exclude_none=True)
    env = {**os.environ, "WHARF_FILE_ROOTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3000", "False"]


def test_lines_longer_than_a_block_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl_reader, "_BLOCK_BYTES", 64)  # every line is longer than a block
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({**record(i), "name": "x" * (i * 37 % 500)}) for i in range(1, 201)]
    path.write_text("\n".join(lines) + "\n")
    spec = spec_of(path, column_paths=PATHS)
    expected = python_rows(spec, path)
    assert rows_of(spec) == expected
    zipped = tmp_path / "events.jsonl.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    assert rows_of(spec_of(zipped, column_paths=PATHS)) == expected


def test_blank_and_indented_lines_and_whole_doubles_stay_on_arrows_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks that let Arrow read a block (no line is two objects or half of one) count
    blank lines exactly, and a whole double lands as Python's repr writes it ("12.0")."""
    monkeypatch.setattr(jsonl_reader, "_BLOCK_BYTES", 700)
    amounts = [12.0, -0.0, 0.0, 1e9, 3.5, -7.0, 0.0001, 9999999999.0]
    lines = [json.dumps({**record(i), "amount": amounts[i % len(amounts)]}) for i in range(1, 90)]
    for at, odd in [(5, ""), (9, "  \t"), (20, "\r"), (33, "   " + lines[33]), (50, "")]:
        lines.insert(at, odd)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n \n\t")
    spec = spec_of(path, column_paths=PATHS)
    expected = python_rows(spec, path)
    monkeypatch.setattr(jsonl_reader.json, "loads", _refused)
    assert rows_of(spec) == expected
    assert [row["amount"] for row in expected[:8]] == [
        "-0.0", "0.0", "1000000000.0", "3.5", "-7.0", "0.0001", "9999999999.0", "12.0"
    ]  # fmt: skip
