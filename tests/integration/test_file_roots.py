"""A ``file`` source reads only below its allowed roots (README, "Threat model"): relative
paths below ``include/reference/``, absolute ones below a folder an operator lists in
``WHARF_FILE_ROOTS``, never ``/proc``, ``/sys`` or ``/dev``, and ``s3://`` only from buckets
listed in ``WHARF_S3_BUCKETS``. Each hostile path is refused by ``wharf check`` with file:line
and the exact message, and again at run time (the reader, and the DAG run that re-reads the
YAML): the run fails at once, publishes nothing and never quotes the file."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from support import last_audit

from wharf import extract, settings
from wharf.cli.main import main
from wharf.contract.dataset import DatasetSpec
from wharf.contract.file_source import FileSource
from wharf.errors import TerminalError, UnsafeSpecError
from wharf.extract.local_files import open_below
from wharf.orchestration.dag_factory import build_dag
from wharf.specfiles import get_spec

DAGS = str(Path(__file__).resolve().parents[2] / "dags")
CANARY = "canary-4f1d9e-do-not-publish"
PATH_LINE = 11  # the line of 'path:' in YAML below
YAML = """\
metadata:
  domain: shop
  dataset: {dataset}
  owners: [{{name: Shop team, email: shop@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: file
  format: {format}
  path: {path}
columns:
  - {{name: id, data_type: integer, allow_null: false}}
  - {{name: note, data_type: string}}
"""


@dataclass
class Place:
    """An allowed root (``WHARF_FILE_ROOTS``) and, beside it, a folder outside every root
    holding a secret file."""

    root: Path
    outside: Path
    schemas: Path

    @property
    def roots_text(self) -> str:
        return f"{settings.reference_dir()}, {self.root}"

    def yaml(self, dataset: str, path: str, fmt: str = "csv") -> Path:
        folder = self.schemas / "shop"
        folder.mkdir(exist_ok=True)
        file = folder / f"{dataset}.yaml"
        file.write_text(YAML.format(dataset=dataset, path=json.dumps(path), format=fmt))
        return file


@pytest.fixture
def place(tmp_path: Path, schemas: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.csv").write_text(f"id,note\n1,{CANARY}\n")
    (outside / "secret.jsonl").write_text(json.dumps({"id": 1, "note": CANARY}) + "\n")
    (root / "good.csv").write_text("id,note\n1,fine\n")
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(root))
    return Place(root, outside, schemas)


def outside_roots(place: Place, path: str) -> str:
    return (
        f"{path!r} is outside the allowed file roots ({place.roots_text}): use a path relative "
        "to include/reference/, or an operator adds its folder to WHARF_FILE_ROOTS"
    )


def resolves_out(place: Place, described: str, real: Path) -> str:
    return (
        f"{described} resolves to {str(real)!r}, outside the allowed file roots "
        f"({place.roots_text})"
    )


def check_refuses(file: Path, message: str, capsys: Any) -> None:
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"{file.name}:{PATH_LINE}: source.path: {message}" in err, err
    assert CANARY not in err and "Traceback" not in err


def audit_of(pg: Any, dataset_id: str) -> tuple[str, dict[str, Any]]:
    error, detail = last_audit(pg, dataset_id, "extract", "error, detail")
    return str(error), detail


def published(pg: Any, table: str) -> bool:
    return bool(pg.execute("SELECT to_regclass(%s) IS NOT NULL", (f"shop.{table}",)).fetchone()[0])


def run_refuses(pg: Any, dataset_id: str, message: str, make_bad: Callable[[], object]) -> None:
    """The run of a YAML that passed the DAG processor's (lexical) check, its file made
    hostile first: it fails terminally at extract naming the rule, and nothing is published."""
    dag = build_dag(get_spec(dataset_id))
    make_bad()
    assert str(dag.test().state) == "failed"
    error, detail = audit_of(pg, dataset_id)
    assert message in error, error
    assert detail["terminal"] is True
    assert CANARY not in error + json.dumps(detail)
    assert not published(pg, dataset_id.split(".")[1])


def parse_refuses(place: Place, file: Path, message: str) -> None:
    """The dags folder leaves out the DAG of a YAML the model refuses, naming file:line, and
    keeps the other datasets' DAGs."""
    place.yaml("fine", "good.csv")
    bag = DagBag(dag_folder=DAGS)
    assert "shop.fine" in bag.dag_ids and f"shop.{file.stem}" not in bag.dag_ids
    [(origin, error)] = bag.import_errors.items()
    assert origin.endswith("wharf_yaml_errors.py")
    assert f"{file}:{PATH_LINE}: source.path: {message}" in error, error


def reader_refuses(place: Place, path: str, message: str, fmt: str = "csv") -> None:
    """The reader refuses ``path`` even when handed it unchecked (a spec that skipped the
    model: the YAML or the roots changed after it was checked)."""
    good = spec_of({"path": str(place.root / "good.csv"), "format": fmt})
    source = good.source
    assert isinstance(source, FileSource)
    unchecked = good.model_copy(update={"source": source.model_copy(update={"path": path})})
    with pytest.raises(UnsafeSpecError) as refused:
        read(unchecked)
    assert str(refused.value) == f"shop.r: source.path {message}"


# --- refused by the model: wharf check, the DAG processor, and the reader as the backstop -----
def test_an_absolute_path_outside_the_roots(place: Place, capsys: Any) -> None:
    secret = str(place.outside / "secret.csv")
    file = place.yaml("abs_out", secret)
    check_refuses(file, outside_roots(place, secret), capsys)
    parse_refuses(place, file, outside_roots(place, secret))
    reader_refuses(
        place, secret, f"{secret!r} is outside the allowed file roots ({place.roots_text})"
    )


@pytest.mark.parametrize(
    "path",
    ["{root}/../outside/secret.csv", "../../include/sql/wharf/0001_initial.sql", "a/../../x.csv"],
)
def test_a_dot_dot_component(place: Place, capsys: Any, path: str) -> None:
    path = path.format(root=place.root)
    message = f"{path!r} has a '..' component: a file source stays below its root"
    file = place.yaml("dot_dot", path)
    check_refuses(file, message, capsys)
    parse_refuses(place, file, message)
    reader_refuses(place, path, f"{path!r} is outside the allowed file roots ({place.roots_text})")


def test_proc_self_environ(place: Place, capsys: Any, monkeypatch: Any, caplog: Any) -> None:
    message = "'/proc/self/environ' is below /proc: Wharf never reads /proc, /sys or /dev"
    file = place.yaml("environ", "/proc/self/environ", "jsonl")
    check_refuses(file, message, capsys)
    parse_refuses(place, file, message)
    environ = Path(f"/proc/{os.getpid()}/environ")
    reader_refuses(
        place, "/proc/self/environ", resolves_out(place, "'/proc/self/environ'", environ)
    )
    # An operator's root of '/' (which holds /proc), or one not absolute, is ignored.
    monkeypatch.setenv("WHARF_FILE_ROOTS", os.pathsep.join(["/", str(place.root), "data", "/dev"]))
    with caplog.at_level(logging.WARNING, logger="wharf.settings"):
        assert settings.file_roots() == (settings.reference_dir(), place.root)
    assert [r.getMessage() for r in caplog.records if r.name == "wharf.settings"] == [
        "WHARF_FILE_ROOTS: '/' is or holds /proc, /sys or /dev, which Wharf never reads; ignored",
        "WHARF_FILE_ROOTS: 'data' is not an absolute path; ignored",
        "WHARF_FILE_ROOTS: '/dev' is or holds /proc, /sys or /dev, which Wharf never reads; "
        "ignored",
    ]
    check_refuses(place.yaml("environ", "/proc/self/environ", "jsonl"), message, capsys)
    check_refuses(place.yaml("environ", "/etc/passwd"), outside_roots(place, "/etc/passwd"), capsys)
    for forbidden in ("/dev/zero", "/sys/kernel/notes"):
        reader_refuses(
            place,
            forbidden,
            f"{forbidden!r} is outside the allowed file roots ({place.roots_text})",
        )


def test_globs_and_names_that_could_escape(place: Place, capsys: Any) -> None:
    deep = str(place.root / "**" / "*.csv")
    message = f"{deep!r} uses '**': a glob's '*' matches within one folder; write one '*' per level"
    file = place.yaml("deep", deep)
    check_refuses(file, message, capsys)
    parse_refuses(place, file, message)
    # A glob in the root's own part of the path cannot widen the root.
    wider = str(place.root) + "*/secret.csv"
    check_refuses(place.yaml("wider", wider), outside_roots(place, wider), capsys)
    with pytest.raises(ValueError, match=r"holds a NUL character"):
        spec_of({"path": str(place.root / "good.csv\0.txt")})


def test_an_s3_bucket_not_allowed(place: Place, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("WHARF_S3_BUCKETS", raising=False)
    message = (
        "bucket 'other-bucket' is not allowed: an operator lists the buckets file sources may "
        "read in WHARF_S3_BUCKETS (allowed: none)"
    )
    file = place.yaml("s3_out", "s3://other-bucket/x.csv")
    check_refuses(file, message, capsys)
    parse_refuses(place, file, message)
    monkeypatch.setenv("WHARF_S3_BUCKETS", "wharf-test, lake-bucket")
    check_refuses(file, message.replace("none", "lake-bucket, wharf-test"), capsys)


# --- refused once symlinks are followed: wharf check, and the run (the reader) --------------
def test_a_symlink_in_a_root_pointing_out(place: Place, pg: Any, capsys: Any) -> None:
    link = place.root / "link.csv"
    link.symlink_to(place.outside / "secret.csv")
    message = resolves_out(place, repr(str(link)), place.outside / "secret.csv")
    check_refuses(place.yaml("link_out", str(link)), message, capsys)
    run_refuses(pg, "shop.link_out", message, lambda: None)

    # A folder of the root that is a symlink out: refused the same way.
    (place.root / "folder").symlink_to(place.outside, target_is_directory=True)
    via_folder = str(place.root / "folder" / "secret.csv")
    message = resolves_out(place, repr(via_folder), place.outside / "secret.csv")
    check_refuses(place.yaml("folder_out", via_folder), message, capsys)
    run_refuses(pg, "shop.folder_out", message, lambda: None)


def test_a_symlink_swapped_in_after_check_is_refused_at_run_time(
    place: Place, pg: Any, capsys: Any
) -> None:
    data = place.root / "swapped.csv"
    data.write_text("id,note\n1,fine\n")
    file = place.yaml("swapped", str(data))
    assert main(["check", str(file)]) == 0
    capsys.readouterr()

    def swap() -> None:
        data.unlink()
        data.symlink_to(place.outside / "secret.csv")

    message = resolves_out(place, repr(str(data)), place.outside / "secret.csv")
    run_refuses(pg, "shop.swapped", message, swap)
    check_refuses(file, message, capsys)


def test_a_symlink_to_proc_self_environ(place: Place, pg: Any, capsys: Any) -> None:
    link = place.root / "env.jsonl"
    link.symlink_to("/proc/self/environ")
    message = resolves_out(place, repr(str(link)), Path(f"/proc/{os.getpid()}/environ"))
    check_refuses(place.yaml("env_link", str(link), "jsonl"), message, capsys)
    run_refuses(pg, "shop.env_link", message, lambda: None)
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")
    values = [v.partition(b"=")[2].decode(errors="replace") for v in environ]
    values = [v for v in values if len(v) > 8 and "/" not in v]  # paths may be in messages
    error, detail = audit_of(pg, "shop.env_link")
    assert values and not [v for v in values if v in error + json.dumps(detail)]


def test_a_glob_whose_match_is_a_symlink_out(place: Place, pg: Any, capsys: Any) -> None:
    data = place.root / "data"
    data.mkdir()
    (data / "a.csv").write_text("id,note\n1,fine\n")
    pattern = str(data / "*.csv")
    file = place.yaml("glob_out", pattern)
    assert main(["check", str(file)]) == 0
    capsys.readouterr()

    def link() -> None:
        (data / "b.csv").symlink_to(place.outside / "secret.csv")

    message = resolves_out(
        place, f"{pattern!r} matches {str(data / 'b.csv')!r}, which", place.outside / "secret.csv"
    )
    run_refuses(pg, "shop.glob_out", message, link)
    check_refuses(file, message, capsys)


# --- the reader, on its own: a file can change after the YAML was loaded ---------------------
def spec_of(source: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "shop",
                "dataset": "r",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", **source},
            "columns": [
                {"name": "id", "data_type": "integer"},
                {"name": "note", "data_type": "string"},
            ],
        }
    )


def read(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [row for batch in extract.read(spec).batches for row in batch.to_pylist()]


def test_the_reader_refuses_what_changed_after_the_yaml_was_loaded(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = place.root / "later.csv"
    data.write_text("id,note\n1,fine\n")
    spec = spec_of({"path": str(data)})
    assert read(spec) == [{"id": "1", "note": "fine"}]

    data.unlink()
    data.symlink_to(place.outside / "secret.csv")
    with pytest.raises(UnsafeSpecError) as refused:
        read(spec)
    assert str(refused.value) == "shop.r: source.path " + resolves_out(
        place, repr(str(data)), place.outside / "secret.csv"
    )

    data.unlink()
    data.symlink_to("/proc/self/environ")
    with pytest.raises(UnsafeSpecError, match="resolves to '/proc/"):
        read(spec_of({"path": str(data), "format": "jsonl"}))

    # Each file of a glob is checked right before it is opened: one that turns into a
    # symlink out after the listing (while the first file is read) is refused.
    folder = place.root / "many"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.csv").write_text(f"id,note\n1,{name}\n")
    opened = extract.read(spec_of({"path": str(folder / "*.csv")}))
    batches = iter(opened.batches)
    assert next(batches).to_pylist() == [{"id": "1", "note": "a"}]
    (folder / "b.csv").unlink()
    (folder / "b.csv").symlink_to(place.outside / "secret.csv")
    with pytest.raises(UnsafeSpecError, match=r"many/\*\.csv' matches .*b\.csv', which resolves"):
        next(batches)

    # A root setting the reader no longer has (the operator removed it) is refused too.
    good = spec_of({"path": str(place.root / "good.csv")})
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(place.outside))
    with pytest.raises(UnsafeSpecError, match="good.csv' is outside the allowed file roots"):
        read(good)


def test_the_reader_refuses_a_fifo_without_blocking(place: Place) -> None:
    fifo = place.root / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeSpecError, match=r"pipe.csv' is not a regular file"):
        read(spec_of({"path": str(fifo)}))


def test_the_s3_reader_refuses_a_bucket_no_longer_allowed(monkeypatch: Any) -> None:
    monkeypatch.setenv("WHARF_S3_BUCKETS", "wharf-test")
    spec = spec_of({"path": "s3://wharf-test/x.csv"})
    monkeypatch.setenv("WHARF_S3_BUCKETS", "")
    with pytest.raises(UnsafeSpecError) as refused:
        extract.read(spec)
    assert str(refused.value) == (
        "shop.r: source.path bucket 'wharf-test' is not allowed: an operator lists the buckets "
        "file sources may read in WHARF_S3_BUCKETS (allowed: none)"
    )
    assert isinstance(refused.value, TerminalError)


def test_an_s3_source_takes_only_an_aws_connection(monkeypatch: Any) -> None:
    """A database's connection as an s3:// source's: its login would go out as an AWS
    access key; the reader refuses it before any S3 call."""
    monkeypatch.setenv("WHARF_S3_BUCKETS", "wharf-test")
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_PG", "postgres://reader:pw@127.0.0.1:1/shop")
    spec = spec_of({"path": "s3://wharf-test/x.csv", "conn_id": "shop_pg"})
    with pytest.raises(TerminalError) as refused:
        extract.read(spec)
    assert str(refused.value) == (
        "shop.r: connection 'shop_pg' is a postgres connection; an s3:// file source takes "
        "one of type aws"
    )


def test_a_folder_swapped_for_a_symlink_while_opening_is_never_read(place: Place) -> None:
    """A real folder of the root swapped for a symlink out, again and again, while the reader
    opens a file in it: the check of the opened descriptor refuses whatever slips between
    the resolve and the open, so the secret is never read (each open either reads the file
    inside or is refused)."""
    sub, away = place.root / "sub", place.root / "sub_away"
    sub.mkdir()
    (sub / "secret.csv").write_text("id,note\n1,inside\n")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            os.rename(sub, away)
            sub.symlink_to(place.outside, target_is_directory=True)
            sub.unlink()
            os.rename(away, sub)

    flipper = threading.Thread(target=flip)
    flipper.start()
    outcomes: dict[str, int] = {}
    # At least 3,000 opens, and on until both outcomes were seen (a loaded machine may give
    # the flipping thread few turns), for at most 60 s.
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and (
            sum(outcomes.values()) < 3000
            or not (outcomes.get("inside") and outcomes.get("refused"))
        ):
            try:
                with open_below(sub / "secret.csv", "'sub/secret.csv'") as handle:
                    text = handle.read().decode()
                outcome = "outside" if CANARY in text else "inside"
            except UnsafeSpecError:
                outcome = "refused"
            except FileNotFoundError:  # opened while the folder was renamed away
                outcome = "missing"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    finally:
        stop.set()
        flipper.join()
    assert "outside" not in outcomes, outcomes
    assert outcomes.get("inside") and outcomes.get("refused"), outcomes
