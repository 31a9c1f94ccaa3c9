"""The ``file`` source: local files below the allowed roots or S3 objects of allowed
buckets, with their dialect and completeness proofs."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from wharf import settings
from wharf.contract.base import ContractModel, jsonpath_problem, spec_error
from wharf.contract.names import S3_BUCKET_PATTERN, ColumnName, ConnId


def _text_encoding(value: str) -> str:
    """A codec Python decodes bytes to text with: 'rot13' and 'base64' are codecs too, but
    not text encodings, and fail every read."""
    import codecs

    try:
        known = codecs.lookup(value)._is_text_encoding
    except LookupError:
        known = False
    if not known:
        raise PydanticCustomError(
            "wharf_encoding",
            "{value} is not a text encoding Python knows (e.g. utf-8, latin-1, cp1252)",
            {"value": repr(value[:50])},
        )
    return value


_SIDE_FILE = re.compile(r"[^/\\\0*?\[\]]{1,255}")


def _side_file_name(value: str | None) -> str | None:
    """A completeness file's name: one plain file name beside the data (no folder, no glob)."""
    if value is not None and (not _SIDE_FILE.fullmatch(value) or value in (".", "..")):
        raise PydanticCustomError(
            "wharf_side_file",
            "{value} is not a file name: the file lies beside the data, so no '/' (and no "
            "glob character, NUL or '..')",
            {"value": repr(value[:100])},
        )
    return value


SideFileName = Annotated[str | None, AfterValidator(_side_file_name)]


class Completeness(ContractModel):
    """Proof, beside the data, that a file source's files are whole before anything of them
    is published (``source.completeness``); any combination of:

    - ``marker``: a file (e.g. ``_SUCCESS``) that must exist in each folder the data is read
      from, written by the producer once every file is complete;
    - ``checksum: sha256``: a ``<file>.sha256`` beside each file (``sha256sum``'s format, or
      the bare digest) whose digest the bytes read must match;
    - ``manifest``: a JSON file in each folder, ``{"files": {"<name>": {"rows": N,
      "sha256": "<hex>"}}}``, listing each file read with its data rows and/or digest.

    These files are never read as data, even when a glob matches them.
    ``wharf.extract.completeness`` verifies each one in ``extract``."""

    marker: SideFileName = Field(
        default=None,
        description="A file (`_SUCCESS`) that must exist in each folder the data is read "
        "from, as Spark and Hadoop write it once a folder's files are complete.",
    )
    checksum: Literal["sha256"] | None = Field(
        default=None,
        description="A `<file>.sha256` beside each file (`sha256sum`'s format, or the bare "
        "digest) that the bytes read must match.",
    )
    manifest: SideFileName = Field(
        default=None,
        description='A JSON file in each folder, `{"files": {"<name>": {"rows": N, '
        '"sha256": "<hex>"}}}`, listing each file read with its data rows and/or digest.',
    )

    @model_validator(mode="after")
    def _something(self) -> Completeness:
        if self.marker is None and self.checksum is None and self.manifest is None:
            raise spec_error("completeness needs at least one of marker, checksum, manifest")
        if self.marker is not None and self.marker == self.manifest:
            raise spec_error("marker and manifest must be different files", "manifest")
        return self

    def is_own_file(self, name: str) -> bool:
        """Whether the file ``name`` (a base name) is one of these completeness files."""
        return name in (self.marker, self.manifest) or (
            self.checksum is not None and name.endswith(f".{self.checksum}")
        )


class FileSource(ContractModel):
    """CSV, Parquet, xlsx or JSON-lines files: a path relative to ``include/reference/``, an
    absolute path below an allowed root (``WHARF_FILE_ROOTS``), or an ``s3://bucket/key`` URL
    of an allowed bucket (``WHARF_S3_BUCKETS``), read through the Amazon provider's connection
    ``conn_id``, ``aws_default`` by default. A glob pattern (``*``, ``?``, ``[...]``; ``*``
    does not cross '/', ``**`` is refused) reads every match in name order as one dataset.

    The model holds the lexical rule (no NUL, no '..', no absolute path outside the roots,
    never /proc, /sys or /dev); ``wharf.extract.local_paths.checked_paths`` adds the resolved
    one (symlinks followed), which ``wharf check`` runs, and the reader again right before it
    opens each file."""

    type: Literal["file"] = Field(description="Local files or S3 objects.")
    path: str = Field(
        min_length=1,
        description="Relative to `include/reference/`, absolute below a `WHARF_FILE_ROOTS` "
        "folder, or `s3://bucket/key` of a `WHARF_S3_BUCKETS` bucket. A glob (`*`, `?`, "
        "`[...]`; `*` does not cross `/`, `**` is refused) reads every match in name order as "
        "one dataset; all must have the same columns.",
    )
    format: Literal["csv", "parquet", "xlsx", "jsonl"] = Field(
        default="csv",
        description="`jsonl` is one JSON object per line, blank lines skipped (`.jsonl.gz` is "
        "unzipped).",
    )
    sheet: str | None = Field(
        default=None,
        description="xlsx: the sheet to read (none: the first); its first row is the header.",
    )
    delimiter: str = Field(
        default=",",
        min_length=1,
        max_length=1,
        description="CSV: the field separator (Python's `csv` dialect names).",
    )
    quotechar: str = Field(
        default='"', min_length=1, max_length=1, description="CSV: the quote character."
    )
    escapechar: str | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description="CSV: the character that escapes a delimiter or quote (none: no escape).",
    )
    doublequote: bool = Field(
        default=True, description="CSV: a doubled quote character inside quotes is one."
    )
    encoding: Annotated[str, AfterValidator(_text_encoding)] = Field(
        default="utf-8",
        description="CSV and jsonl: a text encoding Python knows (jsonl: one that writes a "
        "newline as one byte).",
    )
    skip_rows: int = Field(
        default=0, ge=0, description="CSV: lines before the header (titles, notes)."
    )
    null_values: tuple[str, ...] = Field(
        default=("",),
        description="CSV and xlsx: values that land as NULL (in jsonl, JSON `null` and "
        "missing keys are).",
    )
    batch_size: int = Field(
        default=50_000,
        ge=1,
        le=1_000_000,
        description="Rows per batch for Parquet, xlsx and jsonl (CSV is read in 1 MiB blocks).",
    )
    conn_id: ConnId | None = Field(
        default=None,
        description="`s3://` paths only (refused for local ones): the Airflow AWS connection "
        "(none: `aws_default`).",
    )
    column_paths: dict[ColumnName, str] = Field(
        default_factory=dict,
        description="jsonl only: JSONPath per column for nested values "
        "(`city: $.customer.address.city`); other columns read the key `source_name` or "
        "`name`.",
    )
    completeness: Completeness | None = Field(
        default=None,
        description="Proof that the files are whole, verified in `extract` before anything "
        "is published.",
    )

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"file:{self.path}"

    @property
    def is_s3(self) -> bool:
        """Whether the path is an ``s3://`` URL."""
        return self.path.startswith("s3://")

    @property
    def is_glob(self) -> bool:
        """Whether the path is a glob pattern."""
        return any(ch in self.path for ch in "*?[")

    @property
    def aws_conn_id(self) -> str:
        """The Airflow connection an ``s3://`` path is read through."""
        return self.conn_id or "aws_default"

    def s3_bucket_key(self) -> tuple[str, str]:
        """The bucket and the key (or key pattern) of an ``s3://`` path."""
        bucket, _, key = self.path.removeprefix("s3://").partition("/")
        return bucket, key

    def is_completeness_file(self, name: str) -> bool:
        """Whether a glob's match ``name`` (a base name) is a completeness file, not data."""
        return self.completeness is not None and self.completeness.is_own_file(name)

    def completeness_files(self, data: Path) -> list[Path]:
        """The completeness files that belong beside the local file ``data``."""
        if self.completeness is None:
            return []
        c = self.completeness
        names = [c.marker, c.manifest, f"{data.name}.{c.checksum}" if c.checksum else None]
        return [data.parent / name for name in names if name is not None]

    def described(self, match: Path | None = None) -> str:
        """The path as the YAML writes it, for messages; for a glob's ``match``, both."""
        if match is None or not self.is_glob:
            return repr(self.path)
        return f"{self.path!r} matches {str(match)!r}, which"

    def _path_problem(self) -> str | None:
        """The lexical rule: why the path may not be read, or None."""
        path = self.path
        if "\0" in path:
            return f"{path!r} holds a NUL character"
        if ".." in path.split("/"):
            return f"{path!r} has a '..' component: a file source stays below its root"
        if "**" in path:
            return (
                f"{path!r} uses '**': a glob's '*' matches within one folder; write one '*' "
                "per level"
            )
        if self.is_s3:
            return settings.s3_bucket_problem(self.s3_bucket_key()[0])
        written = PurePosixPath(os.path.normpath(path))
        if not written.is_absolute():
            return None  # below include/reference/: no '..' and not absolute
        forbidden = settings.forbidden_root(written)
        if forbidden is not None:
            return f"{path!r} is below {forbidden}: Wharf never reads /proc, /sys or /dev"
        if not any(written.is_relative_to(root) for root in settings.file_roots()):
            return (
                f"{path!r} is outside the allowed file roots ({settings.roots_text()}): use a path "
                "relative to include/reference/, or an operator adds its folder to "
                "WHARF_FILE_ROOTS"
            )
        return None

    @model_validator(mode="after")
    def _dialect(self) -> FileSource:
        marks = [self.delimiter, self.quotechar, *([self.escapechar] if self.escapechar else [])]
        if len(set(marks)) != len(marks) or any(m in "\r\n" for m in marks):
            raise spec_error(
                "delimiter, quotechar and escapechar must be three different characters, none "
                "of them a line break",
                "delimiter",
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> FileSource:
        if self.is_s3:
            bucket, key = self.s3_bucket_key()
            if not S3_BUCKET_PATTERN.fullmatch(bucket) or not key or key.endswith("/"):
                raise spec_error(
                    f"{self.path!r} is not an S3 object URL: expected s3://bucket/key "
                    "(a glob may be in the key, e.g. s3://bucket/raw/2026-*/*.csv)",
                    "path",
                )
        elif self.conn_id is not None:
            raise spec_error(
                "'conn_id' is only for s3:// paths (a local file needs no connection)", "conn_id"
            )
        elif "://" in self.path:
            raise spec_error(
                f"{self.path!r}: only local paths and s3:// URLs are supported", "path"
            )
        problem = self._path_problem()
        if problem is not None:
            raise spec_error(problem, "path")
        if self.column_paths and self.format != "jsonl":
            raise spec_error(
                f"'column_paths' applies to format jsonl only, not {self.format}",
                "column_paths",
            )
        for name, path in self.column_paths.items():
            problem = jsonpath_problem(path)
            if problem:
                raise spec_error(f"{path!r} is not a JSONPath ({problem})", "column_paths", name)
        return self
