"""``type: http``: a paginated JSON API through an Airflow HTTP connection.

The connection (``conn_id``) holds the base URL, auth and headers, read by the HTTP
provider's ``HttpHook``; the YAML gives the path, query parameters, where the records are
and how pages follow each other (one class per style in ``wharf.extract.paginators``, which
this module's request loop asks for each next request). Pages are read one at a time and
turned into batches of ``batch_size`` rows, so memory holds one page and the next one coming
(one more for ``page`` and ``offset``, which compare each page with the one before) and one
batch whatever the API's size.

Credentials stay on their host: every request (the first page, each next link, each
redirect hop, which Wharf follows itself, at most ``MAX_REDIRECTS``) goes to the connection's
origin (scheme, host, port) with the connection's credentials, or to an origin the operator
lists in the connection's extra (``wharf_allowed_origins``) with none at all (no auth, no
connection headers, no cookies); any other origin is refused (``HttpOriginError``) before a
byte is sent.

``timeout_seconds`` is a deadline for each request, from connecting to the body's last byte
(``HttpDeadlineError``, transient); a page's body may hold at most ``max_page_bytes``.

Retries: 429 and any 5xx, and connection errors, are retried with exponential backoff,
honouring ``Retry-After`` (at most ``max_backoff_seconds``). Any other 4xx fails at once. A
request that still fails raises ``HttpSourceError`` quoting the URL (origin and path, never
its query), the status and the start of the body; the extract fails and nothing is
published. Each page is requested once its predecessor succeeded, so none is skipped or read
twice; it is requested while its predecessor's records are batched (``_pages``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from string import Formatter
from typing import Any
from urllib.parse import urljoin, urlsplit

import pyarrow as pa
from requests.auth import AuthBase
from urllib3.exceptions import HTTPError, InvalidHeader
from urllib3.util.retry import Retry

from wharf import connections
from wharf.contract.dataset import DatasetSpec
from wharf.contract.http_source import MAX_PARAM_CHARS, HttpSource, param_template_problem
from wharf.errors import TerminalError, TransientError, UnsafeSpecError, WharfError
from wharf.extract import Extract, Modified, Window
from wharf.extract.json_records import RecordBatcher, records_getter
from wharf.extract.paginators import Page, Request, paginator_for
from wharf.extract.urls import Origin, origin_of, shown

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset([429, *range(500, 600)])
REDIRECT_STATUSES = frozenset([301, 302, 303, 307, 308])
_SUCCESS = range(200, 300)
_REDIRECTION = range(300, 400)
MAX_REDIRECTS = 5
# The connection extra in which an operator lists other origins a source may read (with no
# credential): a JSON list, or a string of comma-separated origins.
ALLOWED_ORIGINS_KEY = "wharf_allowed_origins"
_BODY_EXCERPT = 300
_CHUNK = 64 * 1024
_PROGRESS_SECONDS = 10.0


class HttpSourceError(WharfError, RuntimeError):
    """A request that failed for good: a 4xx, or a 429/5xx after the last retry."""


class HttpClientError(HttpSourceError, TerminalError):
    """A 4xx other than 429: the request itself is wrong (path, auth); a retry cannot help."""


class HttpServerError(HttpSourceError, TransientError):
    """A 429 or 5xx, or a connection error, after the last retry: the task is retried."""


class HttpDeadlineError(HttpSourceError, TransientError):
    """A request still unfinished ``timeout_seconds`` after it began: retried by the task."""


class HttpOriginError(HttpSourceError, UnsafeSpecError):
    """A link or redirect to an origin the connection does not allow (threat model)."""


class HttpRedirectError(HttpSourceError, TerminalError):
    """A 3xx Wharf does not follow: too many redirects, or one without a ``Location``."""


class HttpPageTooLargeError(HttpSourceError, TerminalError):
    """A page whose body is larger than ``max_page_bytes``."""


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


def _credentials(session: Any) -> list[str]:
    """What of the session a response must not quote: the password (as is and URL-quoted),
    the Basic token it is sent as, and each header the connection's extra adds (an API key)."""
    import base64

    import requests

    auth = session.auth
    login, password = (
        auth
        if isinstance(auth, tuple)
        else (
            getattr(auth, "username", None),
            getattr(auth, "password", None),
        )
    )
    found = connections.secret_forms(str(password)) if password else []
    if login is not None and password:
        found.append(base64.b64encode(f"{login}:{password}".encode()).decode())
    defaults = requests.utils.default_headers()
    found += [str(v) for k, v in session.headers.items() if v and defaults.get(k) != v]
    return sorted(set(found), key=len, reverse=True)


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


# --- the requests Wharf makes ----------------------------------------------------------------


class _Watchdog:
    """Cuts a request off at its deadline: shuts down the sockets it uses, so that no phase
    (TLS handshake, status line, headers) can outlast ``timeout_seconds``, however slowly
    a server drips bytes. A socket read only waits for *some* byte; this bounds them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.fired = False

    def start(self, seconds: float) -> None:
        with self._lock:
            self._sockets, self.fired = [], False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._sockets = []

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def install(self, session: Any) -> None:
        """Make the pools of ``session``'s adapters report their sockets to this watchdog."""
        pools = _watched_pools(self)
        for adapter in session.adapters.values():
            manager = getattr(adapter, "poolmanager", None)
            if manager is not None:
                manager.clear()
                manager.pool_classes_by_scheme = pools

    def install_proxy(self, session: Any, url: str, proxies: dict[str, str]) -> None:
        """The same for the (lazily made) manager of the proxy ``url`` goes through."""
        from requests.utils import select_proxy
        from urllib3 import ProxyManager

        proxy = select_proxy(url, proxies)
        adapter = session.get_adapter(url)
        if proxy and hasattr(adapter, "proxy_manager_for"):
            manager = adapter.proxy_manager_for(proxy)
            if type(manager) is ProxyManager:  # SOCKS managers keep their own pools
                manager.pool_classes_by_scheme = _watched_pools(self)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown (an SSLSocket's would drop its SSL object under the
    # reading thread): the blocked read returns at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watched_pools(watchdog: _Watchdog) -> dict[str, type]:
    """urllib3 pool classes whose connections report each socket they open or reuse."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Connection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    class SecureConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            watchdog.watch(getattr(conn, "sock", None))  # a kept-alive connection
            return conn

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

        def _get_conn(self, timeout: float | None = None) -> Any:
            conn = super()._get_conn(timeout)
            watchdog.watch(getattr(conn, "sock", None))
            return conn

    return {"http": Pool, "https": SecurePool}


class _NoAuth(AuthBase):
    """No credential; set on a session it also keeps requests from reading ``~/.netrc``."""

    def __call__(self, request: Any) -> Any:
        return request


class _Client:
    """Sends one source's GETs: only to the connection's origin with its credentials, to an
    origin the operator allows (the connection's ``wharf_allowed_origins``) with none, and
    nowhere else. Follows redirects itself, checking each hop before sending it."""

    def __init__(
        self, spec: DatasetSpec, hook: Any, session: Any, modified: Modified | None = None
    ) -> None:
        import requests

        # Each page's Last-Modified goes here (the source's modified time: the newest).
        self.modified = modified or Modified()
        source = spec.source
        assert isinstance(source, HttpSource)
        self.source, self.dataset_id, self.conn_id = source, spec.dataset_id, source.conn_id
        if getattr(hook, "_srv_lookup_enabled", False):
            raise TerminalError(
                f"{self.dataset_id}: connection {self.conn_id!r} uses srv_lookup, which the http "
                "source does not support: its credentials must stay on one origin"
            )
        origin = origin_of(hook.base_url)
        if origin is None:
            raise TerminalError(
                f"{self.dataset_id}: connection {self.conn_id!r} has no http(s)://host[:port] "
                "base URL"
            )
        self.origin = origin
        extra = hook.get_connection(self.conn_id).extra_dejson
        self.allowed = _allowed_origins(extra.get(ALLOWED_ORIGINS_KEY), self.conn_id)
        session.headers.pop(ALLOWED_ORIGINS_KEY, None)  # the hook makes every extra a header
        self.session = session
        self.secrets = _credentials(session)
        bare = requests.Session()
        bare.auth = _NoAuth()
        bare.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keeps none
        bare.proxies, bare.verify, bare.trust_env = (
            dict(session.proxies),
            session.verify,
            session.trust_env,
        )
        self.bare = bare
        self.watchdog = _Watchdog()
        self.watchdog.install(session)
        self.watchdog.install(bare)

    def _session_for(self, url: str, what: str, how: str) -> Any:
        origin = origin_of(url)
        if origin == self.origin:
            return self.session
        if origin is not None and origin in self.allowed:
            return self.bare
        where = str(origin) if origin else "an address that is not http(s)://host[:port]"
        raise HttpOriginError(
            f"{what}: {how} {where}, another origin than the connection's {self.origin} "
            f"(connection {self.conn_id!r}); refused so that the connection's credentials stay "
            f"on their host (an operator may allow an origin in the connection's extra: "
            f"{ALLOWED_ORIGINS_KEY})"
        )

    def get(self, request: Request, what: str) -> Page:
        """GET one page (``what``: how messages name it), following up to ``MAX_REDIRECTS``
        redirects, each checked first."""
        import requests

        url, params, how = request.url, request.params, request.how
        for _ in range(MAX_REDIRECTS + 1):
            full = requests.Request("GET", url, params=params).prepare().url or url
            session = self._session_for(full, what, how)
            prepared = session.prepare_request(requests.Request("GET", full))
            if self._session_for(prepared.url, what, how) is not session:  # pragma: no cover
                raise HttpOriginError(f"{what}: the prepared URL changed origin; refused")
            response, deadline = self._attempts(session, prepared, what)
            with closing(response), _stopping(self.watchdog):
                status = response.status_code
                if status in REDIRECT_STATUSES and response.headers.get("Location"):
                    url, params = urljoin(prepared.url, response.headers["Location"]), None
                    how = f"a redirect ({status}) from {shown(prepared.url)} goes to"
                    continue
                if status not in _SUCCESS:
                    excerpt = self._read(response, deadline, what, _BODY_EXCERPT * 4, cut=True)
                    detail = excerpt.decode("utf-8", "replace")[:_BODY_EXCERPT]
                    # An error page may echo the request: its credentials never reach a log.
                    detail = connections.scrubbed(detail, self.secrets)
                    error: type[HttpSourceError] = (
                        HttpServerError
                        if status in RETRY_STATUSES
                        else HttpRedirectError
                        if status in _REDIRECTION
                        else HttpClientError
                    )
                    retried = " (after the last retry)" if status in RETRY_STATUSES else ""
                    raise error(
                        f"{what}: GET {shown(prepared.url)} returned {status} {response.reason}"
                        f"{retried}: {detail.replace(chr(10), ' ')!r}"
                    )
                body = self._read(response, deadline, what, self.source.max_page_bytes)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    start = body[:_BODY_EXCERPT].decode("utf-8", "replace").replace("\n", " ")
                    start = connections.scrubbed(start, self.secrets)
                    raise ValueError(
                        f"{what}: {shown(prepared.url)} did not return JSON: {start!r}"
                    ) from None
                self.modified.seen(_last_modified(response.headers.get("Last-Modified")))
                return Page(prepared.url, parsed, response.links, what)
        raise HttpRedirectError(
            f"{what}: more than {MAX_REDIRECTS} redirects, the last to {shown(url)}"
        )

    def _attempts(self, session: Any, prepared: Any, what: str) -> tuple[Any, float]:
        """Send ``prepared`` until it answers other than 429/5xx or the attempts run out
        (``retry``); returns the response (its body unread) and its attempt's deadline."""
        import requests

        retry, timeout = self.source.retry, self.source.timeout_seconds
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        settings["stream"] = True
        watchdog = self.watchdog
        for attempt in range(1, retry.max_attempts + 1):
            watchdog.install_proxy(session, prepared.url, settings.get("proxies") or {})
            deadline = time.monotonic() + timeout
            watchdog.start(timeout)  # stopped once the body is read (get), or below
            wait = min(retry.backoff_seconds * 2 ** (attempt - 1), retry.max_backoff_seconds)
            try:
                response = session.send(
                    prepared, allow_redirects=False, timeout=(timeout, timeout), **settings
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                watchdog.stop()
                if watchdog.fired:
                    raise self._late(prepared.url, what) from None
                why = _reason(err)
                if attempt == retry.max_attempts:
                    raise HttpServerError(
                        f"{what}: GET {shown(prepared.url)} failed after {attempt} attempt(s): "
                        f"{why}"
                    ) from None
            else:
                if watchdog.fired or time.monotonic() > deadline:
                    watchdog.stop()
                    response.close()
                    raise self._late(prepared.url, what)
                if response.status_code not in RETRY_STATUSES or attempt == retry.max_attempts:
                    return response, deadline
                watchdog.stop()
                why = f"status {response.status_code}"
                after = response.headers.get("Retry-After")
                if after:
                    with contextlib.suppress(InvalidHeader):
                        wait = min(Retry(0).parse_retry_after(after), retry.max_backoff_seconds)
                response.close()
            log.warning(
                "%s: GET %s: %s; attempt %d in %.1f s",
                what,
                shown(prepared.url),
                why,
                attempt + 1,
                wait,
            )
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _late(self, url: str, what: str) -> HttpDeadlineError:
        return HttpDeadlineError(
            f"{what}: GET {shown(url)} took longer than timeout_seconds "
            f"({self.source.timeout_seconds:g} s), from connecting to the body's last byte"
        )

    def _read(
        self, response: Any, deadline: float, what: str, limit: int, cut: bool = False
    ) -> bytes:
        """The (decoded) body, read before ``deadline`` and at most ``limit`` bytes long
        (``cut``: the first ``limit`` bytes, else a longer body is an error)."""
        too_large = HttpPageTooLargeError(
            f"{what}: GET {shown(response.url)}: the body is larger than max_page_bytes "
            f"({limit:,} bytes)"
        )
        length = response.headers.get("Content-Length", "")
        if (
            not cut
            and length.isdigit()
            and int(length) > limit
            and not response.headers.get("Content-Encoding")
        ):
            raise too_large
        raw, chunks, size = response.raw, list[bytes](), 0
        while size <= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._late(response.url, what)
            sock = getattr(raw.connection, "sock", None) if raw.connection else None
            if sock is not None:
                sock.settimeout(remaining)  # no single read may outlast the deadline
            try:
                chunk = raw.read1(_CHUNK, decode_content=True)
            except (HTTPError, OSError) as err:
                if self.watchdog.fired or time.monotonic() >= deadline:
                    raise self._late(response.url, what) from None
                raise HttpServerError(
                    f"{what}: GET {shown(response.url)}: the connection broke while reading "
                    f"the body: {_reason(err)}"
                ) from None
            if not chunk:
                if self.watchdog.fired:  # cut off: a body without a length just ends
                    raise self._late(response.url, what)
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
        if cut:
            return b"".join(chunks)[:limit]
        raise too_large


def _last_modified(value: str | None) -> datetime | None:
    """A ``Last-Modified`` header's time (RFC 9110 HTTP-date), or None if absent or
    unreadable: a server's odd header must not fail the extract."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


@contextmanager
def _stopping(watchdog: _Watchdog) -> Iterator[None]:
    try:
        yield
    finally:
        watchdog.stop()


def _reason(err: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, without the URL they quote."""
    while True:
        inner = getattr(err, "reason", None) or (err.args[0] if err.args else None)
        if isinstance(inner, BaseException) and inner is not err:
            err = inner
            continue
        text = str(err).split(": ", 1)[-1] if "HTTPConnection" in str(err) else str(err)
        return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _allowed_origins(value: Any, conn_id: str) -> frozenset[Origin]:
    """The origins an operator allows in the connection's extra (a list, or a string of
    comma-separated origins); each must be ``scheme://host[:port]``."""
    if value is None:
        return frozenset()
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, list):
        entries = [entries]
    allowed = set()
    for entry in entries:
        text = entry.strip() if isinstance(entry, str) else ""
        origin = origin_of(text)
        parts = urlsplit(text) if origin else None
        if not parts or parts.path not in ("", "/") or parts.query or "@" in parts.netloc:
            raise TerminalError(
                f"connection {conn_id!r}: {ALLOWED_ORIGINS_KEY} entry {str(entry)[:100]!r} is "
                "not an origin: write scheme://host[:port], http or https"
            )
        assert origin is not None
        allowed.add(origin)
    return frozenset(allowed)


def extract(spec: DatasetSpec, window: Window) -> Extract:
    """Read every page of the API (lazily, as the caller iterates).

    Raises ``HttpSourceError`` for a failed request (``HttpOriginError`` for a link or
    redirect to another origin, ``HttpDeadlineError`` for a request past
    ``timeout_seconds``, ``HttpPageTooLargeError`` past ``max_page_bytes``), ``ValueError``
    for a page that is not JSON or has no records at ``records_path``, or for a cursor or
    next URL that repeats.
    """
    source = spec.source
    assert isinstance(source, HttpSource)
    batcher = RecordBatcher(spec, source.column_paths, source.batch_size)
    params = _params(spec, source, window)
    modified = Modified()

    def batches() -> Iterator[pa.RecordBatch]:
        from airflow.providers.http.hooks.http import HttpHook

        connections.yaml_connection(source.conn_id, "http", spec.dataset_id)
        hook = HttpHook(method="GET", http_conn_id=source.conn_id)
        with hook.get_conn() as session:
            client = _Client(spec, hook, session, modified)
            url = hook.url_from_endpoint(source.path)
            pages = records = 0
            shown_at = time.monotonic()
            for page in _pages(spec, client, url, params):
                pages, records = pages + 1, records + len(page)
                yield from batcher.add(page)
                if time.monotonic() - shown_at > _PROGRESS_SECONDS:
                    log.info("%s: %d pages, %d records so far", spec.dataset_id, pages, records)
                    shown_at = time.monotonic()
            yield from batcher.flush()
            log.info(
                "%s: read %d pages, %d records from %s", spec.dataset_id, pages, records, shown(url)
            )

    return Extract(
        batcher.schema,
        batches(),
        f"HTTP API {source.path or '/'} via connection {source.conn_id!r}",
        modified,
    )


def _params(spec: DatasetSpec, source: HttpSource, window: Window) -> dict[str, Any]:
    """The YAML's query parameters, with ``{logical_date}`` and the interval filled in (ISO
    8601). Each template is checked again here (a spec can change after ``wharf check``) and
    rendered by Wharf, not by ``str.format``."""
    return {
        name: _rendered(spec, name, value, window) if isinstance(value, str) else value
        for name, value in source.params.items()
    }


def _rendered(spec: DatasetSpec, name: str, template: str, window: Window) -> str:
    problem = param_template_problem(template)
    if problem:
        raise UnsafeSpecError(f"{spec.dataset_id}: source.params.{name}: {problem}")
    pieces = list(Formatter().parse(template))
    used = [field for _, field, _, _ in pieces if field is not None]
    values = window.values_for(used, spec.dataset_id, lambda n: "{" + n + "}")
    value = "".join(
        literal + (values[field].isoformat() if field is not None else "")
        for literal, field, _, _ in pieces
    )
    if len(value) > MAX_PARAM_CHARS:
        raise UnsafeSpecError(
            f"{spec.dataset_id}: source.params.{name}: renders to {len(value):,} "
            f"characters; a param is at most {MAX_PARAM_CHARS:,}"
        )
    return value


def _pages(
    spec: DatasetSpec, client: _Client, url: str, params: dict[str, Any]
) -> Iterator[list[Any]]:
    """Each page's records, in order, as the source's paginator leads from page to page.

    The next page is requested as soon as the paginator can say which it is (a page number
    or offset once the page's records are counted, a cursor or link once the page is read),
    before this page's records are handed on: its download overlaps their batching and
    whatever the caller does with them. One request is in flight at a time, on one worker
    thread, so pages come in order and each is asked for once; a failed request raises here
    as it would serially."""
    from concurrent.futures import Future, ThreadPoolExecutor

    source = spec.source
    assert isinstance(source, HttpSource)
    records_of = records_getter(source.records_path)
    paginator = paginator_for(source.pagination)
    request: Request | None = paginator.first_request(url, params)
    number = 0
    with ThreadPoolExecutor(1, thread_name_prefix=f"{spec.dataset_id} pages") as worker:

        def ask(request: Request | None) -> Future[Page] | None:
            nonlocal number
            if request is None:
                return None
            number += 1
            return worker.submit(client.get, request, f"{spec.dataset_id}, page {number}")

        coming = ask(request)
        while coming is not None:
            page = coming.result()
            try:
                records = records_of(page.body)
            except ValueError as err:
                raise ValueError(f"{page.what} ({shown(page.url)}): {err}") from None
            if paginator.is_past_end(page, records):
                return
            coming = ask(paginator.next_request(page, records))
            yield records
