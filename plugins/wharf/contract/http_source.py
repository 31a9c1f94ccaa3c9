"""The ``http`` source: a JSON API of an allowed origin, its pagination and retries."""

from __future__ import annotations

from string import Formatter
from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from wharf.contract.base import ContractModel, jsonpath_problem, spec_error
from wharf.contract.names import ColumnName, ConnId


class Retry(ContractModel):
    """Retries of one HTTP request on 429 and 5xx (and connection errors): the n-th retry
    waits ``backoff_seconds * 2**(n-1)`` (at most ``max_backoff_seconds``), or the server's
    ``Retry-After`` when it sends one."""

    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts of one request, the first included."
    )
    backoff_seconds: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="Seconds before the first retry; each further retry waits twice as long.",
    )
    max_backoff_seconds: float = Field(
        default=120.0,
        ge=0,
        le=3600,
        description="The longest wait in seconds between two attempts, `Retry-After` included.",
    )


class _PagedStop(ContractModel):
    """When ``page`` and ``offset`` pagination stop. By default at the first empty page (one
    request more than the data needs): a server may send fewer records than asked (its own
    page size), so a short page proves nothing. ``total_path`` (JSONPath of the total record
    count) stops once that many are read, and fails on an empty page before it;
    ``has_more_path`` (JSONPath of a true/false field) stops when it is false;
    ``stop_on_short_page: true`` says the server honours the size asked, so a shorter page
    is the last. Whichever says stop first ends the read."""

    total_path: str | None = Field(
        default=None,
        description="JSONPath of the total record count (`$.meta.total`): the read stops "
        "once that many records are read; an empty page before it fails the extract.",
    )
    has_more_path: str | None = Field(
        default=None,
        description="JSONPath of a true/false field (`$.meta.has_more`): the read stops when "
        "it is false; an empty page while it is true fails the extract.",
    )
    stop_on_short_page: bool = Field(
        default=False,
        description="The server honours the page size asked, so a shorter page is the last "
        "(against a server that caps the size this reads one page: say it only when it is "
        "so). By default the read stops at the first empty page.",
    )

    @model_validator(mode="after")
    def _paths_parse(self) -> _PagedStop:
        for field in ("total_path", "has_more_path"):
            path = getattr(self, field)
            problem = jsonpath_problem(path) if path is not None else None
            if problem:
                raise spec_error(f"{path!r} is not a JSONPath ({problem})", field)
        return self


class PagePagination(_PagedStop):
    """``?page=1&per_page=100``, ``?page=2...``; stops as ``_PagedStop`` says."""

    style: Literal["page"] = Field(description="Numbered pages.")
    param: str = Field(default="page", description="The query parameter of the page number.")
    start: int = Field(default=1, ge=0, description="The first page's number.")
    size_param: str = Field(default="per_page", description="The query parameter of the page size.")
    size: int = Field(default=100, ge=1, le=100_000, description="Records asked for per page.")


class OffsetPagination(_PagedStop):
    """``?offset=0&limit=100``, then the offset of the next record not yet read (whatever
    the page's length); stops as ``_PagedStop`` says."""

    style: Literal["offset"] = Field(description="Pages by record offset.")
    offset_param: str = Field(
        default="offset",
        description="The query parameter of the offset: the number of records read so far.",
    )
    limit_param: str = Field(default="limit", description="The query parameter of the limit.")
    limit: int = Field(default=100, ge=1, le=100_000, description="Records asked for per page.")


class CursorPagination(ContractModel):
    """The response names the next page's token (``cursor_path``), sent back as ``param``;
    stops when the token is missing, null or empty."""

    style: Literal["cursor"] = Field(description="Pages by a token the response names.")
    cursor_path: str = Field(
        description="JSONPath of the next page's token (`$.meta.next`); the read stops when "
        "it is missing, null or empty."
    )
    param: str = Field(
        default="cursor", description="The query parameter the token is sent back as."
    )


class NextUrlPagination(ContractModel):
    """The response holds the next page's URL (``next_path``); stops when it is missing."""

    style: Literal["next_url"] = Field(description="Pages by a URL the response holds.")
    next_path: str = Field(
        description="JSONPath of the next page's URL (`$.links.next`), which must stay on "
        "the connection's origin; the read stops when it is missing."
    )


class LinkHeaderPagination(ContractModel):
    """The next page's URL is the ``Link`` header's ``rel="next"`` (RFC 8288), as GitHub's."""

    style: Literal["link_header"] = Field(
        description='Pages by the `Link` header\'s `rel="next"` URL, which must stay on the '
        "connection's origin."
    )


Pagination = Annotated[
    PagePagination | OffsetPagination | CursorPagination | NextUrlPagination | LinkHeaderPagination,
    Field(discriminator="style"),
]


# An http param's placeholders: only these names, each written alone (no format spec, no
# conversion, no attribute or index access), and the rendered value bounded, so a YAML can
# neither run Python's format machinery nor blow a value up (``{x:>99999999}``).
PARAM_PLACEHOLDERS = ("data_interval_start", "data_interval_end", "logical_date")
MAX_PARAM_CHARS = 2_000
# A refused placeholder name is quoted in the error up to this many characters.
_SHOWN_NAME = 40
# The longest value a placeholder renders to: an aware ISO 8601 timestamp with microseconds.
_PLACEHOLDER_CHARS = len("2026-01-01T00:00:00.000000+00:00")


def param_template_problem(value: str) -> str | None:
    """Why ``value`` is not an allowed http param template, or None if it is one. The
    message quotes no more than a placeholder's (capped) name."""
    if len(value) > MAX_PARAM_CHARS:
        return (
            f"the value is {len(value):,} characters long; a param is at most {MAX_PARAM_CHARS:,}"
        )
    allowed = ", ".join("{" + n + "}" for n in PARAM_PLACEHOLDERS)
    try:
        pieces = list(Formatter().parse(value))
    except ValueError:
        return "the value has an unmatched '{' or '}' (write '{{' or '}}' for a literal brace)"
    rendered = 0
    for literal, name, spec, conversion in pieces:
        rendered += len(literal)
        if name is None:
            continue
        shown = "{" + (name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "...") + "}"
        if name not in PARAM_PLACEHOLDERS:
            kind = (
                "uses attribute or index access"
                if name.split(".")[0].split("[")[0] in PARAM_PLACEHOLDERS
                else "is not a placeholder Wharf provides"
            )
            return f"{shown} {kind}; a param may use only {allowed}"
        if conversion is not None:
            return f"{shown} has a conversion (!{conversion}); write {{{name}}} alone"
        if spec:
            return (
                f"{shown} has a format spec; write {{{name}}} alone (Wharf writes it in ISO 8601)"
            )
        rendered += _PLACEHOLDER_CHARS
    if rendered > MAX_PARAM_CHARS:
        return f"the value may render to {rendered:,} characters; a param is at most {MAX_PARAM_CHARS:,}"
    return None


class HttpSource(ContractModel):
    """A JSON API through an Airflow HTTP connection (base URL, auth and headers live in the
    connection, never in YAML). ``records_path`` (JSONPath) finds the records in each page;
    a column's value is at ``column_paths[name]``, else at its ``source_name`` or name."""

    type: Literal["http"] = Field(description="A JSON API.")
    conn_id: ConnId = Field(
        description="The Airflow HTTP connection: base URL, auth and headers live there, "
        "never in YAML."
    )
    path: str = Field(
        default="",
        description="The endpoint under the connection's base URL (`/v1/orders`), never a "
        "full URL.",
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Query parameters; a text value may use `{data_interval_start}`, "
        "`{data_interval_end}` or `{logical_date}` (ISO 8601, UTC), each written alone, so "
        "backfills read their own interval (`{{` and `}}` write a literal brace); at most "
        "2,000 characters once rendered.",
    )
    records_path: str = Field(
        default="$",
        description="JSONPath of the records in each page: the array (`$.data`) or its "
        "elements (`$.data[*]`).",
    )
    column_paths: dict[ColumnName, str] = Field(
        default_factory=dict,
        description="JSONPath per column for nested values (`name: $.attributes.Name`); "
        "other columns read the record's key `source_name` or `name`.",
    )
    pagination: Pagination | None = Field(
        default=None, description="How to ask for the next page; none: one request."
    )
    retry: Retry = Field(
        default=Retry(),
        description="Retries of each request on 429, 5xx and connection errors; any other "
        "4xx fails at once.",
    )
    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A deadline in seconds for each request, from connecting to the body's "
        "last byte (not per read), so a server dripping bytes cannot hold it open.",
    )
    max_page_bytes: int = Field(
        default=100_000_000,
        ge=1_024,
        le=1_000_000_000,
        description="The most a page's body may hold once decoded, so a hostile endpoint "
        "cannot exhaust memory; a larger page fails at once.",
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Records held as Python dicts until a batch is full: 50,000 peaked at "
        "273 MB, 10,000 at 228 MB, at the same speed (bench/extract_memory.py).",
    )

    @property
    def origin(self) -> str:
        """Where the data comes from, for lineage records."""
        return f"http:{self.conn_id}/{self.path.lstrip('/')}"

    @model_validator(mode="after")
    def _params_are_templates(self) -> HttpSource:
        for name, value in self.params.items():
            problem = param_template_problem(value) if isinstance(value, str) else None
            if problem:
                raise spec_error(problem, "params", name)
        return self

    @model_validator(mode="after")
    def _path_not_url(self) -> HttpSource:
        if "://" in self.path or self.path.startswith("//"):
            raise spec_error(
                "path is a full URL (not repeated here: it may hold credentials): give the path "
                "under the connection's base URL, which belongs in the Airflow connection with "
                "any credentials",
                "path",
            )
        return self

    @model_validator(mode="after")
    def _paths_parse(self) -> HttpSource:
        paths: dict[tuple[str, ...], str] = {("records_path",): self.records_path}
        paths.update({("column_paths", k): v for k, v in self.column_paths.items()})
        for field in ("cursor_path", "next_path"):
            if hasattr(self.pagination, field):
                paths[("pagination", field)] = getattr(self.pagination, field)
        for where, path in paths.items():
            problem = jsonpath_problem(path)
            if problem:
                raise spec_error(f"{path!r} is not a JSONPath ({problem})", *where)
        return self
