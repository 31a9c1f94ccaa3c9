"""``type: http``: a paginated JSON API through an Airflow HTTP connection.

The connection (``conn_id``) holds the base URL, auth and headers, read by the HTTP
provider's ``HttpHook``; the YAML gives the path, query parameters, where the records are
and how pages follow each other. Pages are read one at a time and turned into batches of
``batch_size`` rows, so memory holds one page and one batch whatever the API's size.

Retries are urllib3's ``Retry`` (mounted on the hook's session): 429 and any 5xx, and
connection errors, are retried with exponential backoff, honouring ``Retry-After``. Any
other 4xx fails at once. A request that still fails raises ``HttpSourceError`` quoting the
URL, the status and the start of the body; the extract fails and nothing is published.
Each page is requested once its predecessor succeeded, so none is skipped or read twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from string import Formatter
from typing import Any
from urllib.parse import urljoin

import pyarrow as pa
from urllib3.util.retry import Retry

from wharf.errors import TerminalError, TransientError, WharfError
from wharf.sources import Extract, Window
from wharf.sources.json_records import RecordBatcher, compile_path, records_getter
from wharf.spec import (
    CursorPagination,
    DatasetSpec,
    HttpSource,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset([429, *range(500, 600)])
_BODY_EXCERPT = 300
_PROGRESS_SECONDS = 10.0


class HttpSourceError(WharfError, RuntimeError):
    """A request that failed for good: a 4xx, or a 429/5xx after the last retry."""


class HttpClientError(HttpSourceError, TerminalError):
    """A 4xx other than 429: the request itself is wrong (path, auth); a retry cannot help."""


class HttpServerError(HttpSourceError, TransientError):
    """A 429 or 5xx after the last in-request retry: the task is retried later."""


class _LoggedRetry(Retry):
    """urllib3's Retry, logging each retry at WARNING so it shows in the task log."""

    def increment(self, method=None, url=None, response=None, error=None, *args, **kwargs):
        new = super().increment(method, url, response, error, *args, **kwargs)
        why = f"status {response.status}" if response is not None else repr(error)
        attempt = len(new.history) + 1
        wait = new.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = new.get_backoff_time()
        log.warning("GET %s: %s; attempt %d in %.1f s", url, why, attempt, wait)
        return new


def retrying_adapter(max_attempts: int, backoff: float, max_backoff: float) -> Any:
    """A requests ``HTTPAdapter`` that retries GETs on 429, 5xx and connection errors up to
    ``max_attempts`` in all, waiting ``Retry-After`` when sent, else ``backoff * 2**(n-1)``
    seconds (urllib3 does not wait before the first retry), at most ``max_backoff``."""
    from requests.adapters import HTTPAdapter

    retry = _LoggedRetry(
        total=max_attempts - 1,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset(["GET"]),
        backoff_factor=backoff,
        backoff_max=max_backoff,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last response comes back: its status and body are quoted
    )
    return HTTPAdapter(max_retries=retry)


def check(response: Any, what: str) -> None:
    """Raise ``HttpSourceError`` for a non-2xx ``response``, quoting status and body."""
    if not response.ok:
        error = HttpServerError if response.status_code in RETRY_STATUSES else HttpClientError
        raise error(f"{what}: {failure(response, repr(body_excerpt(response)))}")


def body_excerpt(response: Any) -> str:
    """The start of a response's body, on one line."""
    text: str = response.text[:_BODY_EXCERPT]
    return text.replace("\n", " ")


def failure(response: Any, detail: str, reason: str | None = None) -> str:
    """``GET <url> returned <status> <reason>[ (after the last retry)]: <detail>``."""
    retried = " (after the last retry)" if response.status_code in RETRY_STATUSES else ""
    return (
        f"GET {response.url} returned {response.status_code} {reason or response.reason}"
        f"{retried}: {detail}"
    )


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Read every page of the API (lazily, as the caller iterates).

    Raises ``HttpSourceError`` for a failed request, ``ValueError`` for a page that is not
    JSON or has no records at ``records_path``, or for a cursor or next URL that repeats.
    """
    source = spec.source
    assert isinstance(source, HttpSource)
    batcher = RecordBatcher(spec, source.column_paths, source.batch_size)
    params = _params(spec, source, window)

    def batches() -> Iterator[pa.RecordBatch]:
        from airflow.providers.http.hooks.http import HttpHook

        retry = source.retry
        hook = HttpHook(
            method="GET",
            http_conn_id=source.conn_id,
            adapter=retrying_adapter(
                retry.max_attempts, retry.backoff_seconds, retry.max_backoff_seconds
            ),
        )
        with hook.get_conn() as session:
            url = hook.url_from_endpoint(source.path)
            pages = records = 0
            shown = time.monotonic()
            for page in _pages(spec, session, url, params):
                pages, records = pages + 1, records + len(page)
                yield from batcher.add(page)
                if time.monotonic() - shown > _PROGRESS_SECONDS:
                    log.info("%s: %d pages, %d records so far", spec.dataset_id, pages, records)
                    shown = time.monotonic()
            yield from batcher.flush()
            log.info("%s: read %d pages, %d records from %s", spec.dataset_id, pages, records, url)

    return Extract(
        batcher.schema,
        batches(),
        f"HTTP API {source.path or '/'} via connection {source.conn_id!r}",
    )


def _params(spec: DatasetSpec, source: HttpSource, window: Window) -> dict[str, Any]:
    """The YAML's query parameters, with ``{logical_date}`` and the interval filled in."""
    params: dict[str, Any] = {}
    for name, value in source.params.items():
        if isinstance(value, str):
            used = [field for _, field, _, _ in Formatter().parse(value) if field]
            values = window.values_for(used, spec.dataset_id, lambda n: "{" + n + "}")
            value = value.format_map({k: v.isoformat() for k, v in values.items()})
        params[name] = value
    return params


def _pages(
    spec: DatasetSpec, session: Any, url: str, params: dict[str, Any]
) -> Iterator[list[Any]]:
    """Each page's records, in order, following the source's pagination style."""
    source = spec.source
    assert isinstance(source, HttpSource)
    style = source.pagination
    records_of = records_getter(source.records_path)
    token_of = compile_path(style.cursor_path) if isinstance(style, CursorPagination) else None
    next_of = compile_path(style.next_path) if isinstance(style, NextUrlPagination) else None
    query: dict[str, Any] | None = dict(params)
    seen: set[str] = set()
    read = number = 0
    while True:
        number += 1
        if isinstance(style, PagePagination):
            query = {**params, style.param: style.start + number - 1, style.size_param: style.size}
        elif isinstance(style, OffsetPagination):
            query = {**params, style.offset_param: read, style.limit_param: style.limit}
        what = f"{spec.dataset_id}, page {number}"
        response = session.get(url, params=query, timeout=source.timeout_seconds)
        check(response, what)
        try:
            body = response.json()
        except ValueError:
            raise ValueError(
                f"{what}: {response.url} did not return JSON: {body_excerpt(response)!r}"
            ) from None
        try:
            records = records_of(body)
        except ValueError as err:
            raise ValueError(f"{what} ({response.url}): {err}") from None
        read += len(records)
        yield records
        if style is None:
            return
        if isinstance(style, PagePagination | OffsetPagination):
            size = style.size if isinstance(style, PagePagination) else style.limit
            if len(records) < size:
                return
            continue
        if isinstance(style, CursorPagination):
            assert token_of is not None
            token = token_of(body)
            if token in (None, ""):
                return
            query = {**params, style.param: token}
            link = str(token)
        elif isinstance(style, NextUrlPagination | LinkHeaderPagination):
            found = next_of(body) if next_of else response.links.get("next", {}).get("url")
            if not found:
                return
            url, query, link = urljoin(response.url, found), None, urljoin(response.url, found)
        if link in seen:
            raise ValueError(
                f"{what}: the API sent {link!r} as the next page again; stopping rather than "
                "reading a page twice"
            )
        seen.add(link)
