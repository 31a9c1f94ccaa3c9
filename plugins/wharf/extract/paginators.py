"""How an http source's pages follow each other: one small class per ``pagination`` style.

The request loop (``wharf.extract.http``) asks a paginator for the first request, reads the
page, asks ``is_past_end`` whether the page lies past the data (its records are then not
read), and otherwise uses the records and asks ``next_request`` for the page after, until
that is None. Every stop rule of a style lives in its class; sending the requests (retries,
origins, deadlines, byte limits) stays with the loop. A paginator reads one source once.

Each refusal is a ``ValueError`` naming the page (``<dataset>, page <n>``) and what it found,
never a value of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urljoin

from wharf.contract.http_source import (
    CursorPagination,
    LinkHeaderPagination,
    NextUrlPagination,
    OffsetPagination,
    PagePagination,
    Pagination,
)
from wharf.extract.json_records import compile_path
from wharf.extract.urls import shown

# How an origin refusal names where a request's URL came from (``HttpOriginError``).
SOURCE_URL = "the source's URL is on"
NEXT_PAGE = "the API's next page is on"

_Counting = TypeVar("_Counting", PagePagination, OffsetPagination)


@dataclass(frozen=True)
class Request:
    """One GET to send: ``params`` are added to ``url``'s query (None: the URL is a link the
    API gave, sent as it is); ``how`` says where the URL came from, for messages."""

    url: str
    params: dict[str, Any] | None
    how: str = SOURCE_URL


@dataclass
class Page:
    """One page read: the URL it came from (after redirects), its parsed JSON body, its
    ``Link`` header (as requests parses it: ``{"next": {"url": ...}}``) and how messages name
    it (``<dataset>, page <n>``)."""

    url: str
    body: Any
    links: dict[str, Any]
    what: str


class Paginator:
    """The protocol every style follows (see the module's docstring) and, itself, a source
    without ``pagination``: its first page is the only one."""

    def first_request(self, url: str, params: dict[str, Any]) -> Request:
        """The first page's request: the source's URL and the YAML's params."""
        return Request(url, dict(params))

    def is_past_end(self, page: Page, records: list[Any]) -> bool:
        """Whether ``page`` (with ``records``) lies past the data's end, so that its records
        are not read. Raises ValueError for a page that cannot be right."""
        return False

    def next_request(self, page: Page, records: list[Any]) -> Request | None:
        """The request for the page after ``page``, whose ``records`` were read; None when
        ``page`` is the last. Raises ValueError when the page's stop fields are wrong or the
        API would send a page again."""
        return None


class _Counted(Paginator, Generic[_Counting]):
    """``page`` and ``offset``: each request says which records it wants. The read stops at
    the first empty page, unless the YAML gives a stop field (``total_path``,
    ``has_more_path``) or trusts a short page (``stop_on_short_page``); whichever says stop
    first ends it. A page that repeats the one before (an API clamping the page number past
    its end) is refused, as is an empty page before the end the API announced."""

    def __init__(self, style: _Counting, size: int) -> None:
        self.style: _Counting = style
        self.size = size
        self._total_of = compile_path(style.total_path) if style.total_path is not None else None
        more = style.has_more_path
        self._more_of = compile_path(more) if more is not None else None
        self.url, self.params = "", dict[str, Any]()
        self.asked = self.read = 0  # pages asked for; records read
        self._previous: list[Any] | None = None  # the last page's records

    def first_request(self, url: str, params: dict[str, Any]) -> Request:
        self.url, self.params = url, dict(params)
        return self._request()

    def _request(self) -> Request:
        self.asked += 1
        return Request(self.url, self._query())

    def _query(self) -> dict[str, Any]:
        """The params of the request for page number ``asked``, ``read`` records in."""
        raise NotImplementedError

    def is_past_end(self, page: Page, records: list[Any]) -> bool:
        if not records:
            self._check_end(page)
            return True
        # Exact, and cheap: list equality stops at the first record that differs.
        if records == self._previous:
            raise ValueError(
                f"{page.what}: the API sent the records of page {self.asked - 1} again; "
                "stopping rather than reading them twice (an API that repeats its last page "
                "past the end needs total_path or has_more_path to stop)"
            )
        self._previous = records
        return False

    def next_request(self, page: Page, records: list[Any]) -> Request | None:
        self.read += len(records)
        return None if self._is_last(page, len(records)) else self._request()

    def _is_last(self, page: Page, count: int) -> bool:
        """Whether the page just read (of ``count`` records) is the last, as the YAML's stop
        rules say; without one, only an empty page is (``is_past_end``)."""
        if self._total_of is not None and self.read >= self._total(page):
            return True
        if self._more_of is not None:
            more = self._more_of(page.body)
            if not isinstance(more, bool):
                raise ValueError(
                    f"{page.what} ({shown(page.url)}): has_more_path "
                    f"{self.style.has_more_path!r} {_json_kind(more)}, not true or false"
                )
            if not more:
                return True
        return self.style.stop_on_short_page and count < self.size

    def _total(self, page: Page) -> int:
        """The total number of records the page says there are (``total_path``)."""
        assert self._total_of is not None
        total = self._total_of(page.body)
        if isinstance(total, str) and total.isdigit():
            total = int(total)
        if type(total) is not int or total < 0:
            raise ValueError(
                f"{page.what} ({shown(page.url)}): total_path {self.style.total_path!r} "
                f"{_json_kind(total)}, not a whole number of records"
            )
        return total

    def _check_end(self, page: Page) -> None:
        """An empty page ends the read, unless the page itself says there is more: fewer
        records read than ``total_path`` says, or ``has_more_path`` true."""
        said = None
        if self._total_of is not None:
            total = self._total(page)
            if self.read < total:
                said = f"{self.style.total_path} says {total:,}"
        if self._more_of is not None and self._more_of(page.body) is True:
            said = f"{self.style.has_more_path} says there are more"
        if said:
            raise ValueError(
                f"{page.what}: an empty page after {self.read:,} records, but {said}: the API "
                "ended early; stopping rather than publishing part of it"
            )


class PageNumberPaginator(_Counted[PagePagination]):
    """``?page=1&per_page=100``, ``?page=2&per_page=100``, ... from ``start``."""

    def __init__(self, style: PagePagination) -> None:
        super().__init__(style, style.size)

    def _query(self) -> dict[str, Any]:
        number, style = self.style.start + self.asked - 1, self.style
        return {**self.params, style.param: number, style.size_param: self.size}


class OffsetPaginator(_Counted[OffsetPagination]):
    """``?offset=0&limit=100``, then the offset of the next record not yet read (whatever
    the pages' lengths)."""

    def __init__(self, style: OffsetPagination) -> None:
        super().__init__(style, style.limit)

    def _query(self) -> dict[str, Any]:
        style = self.style
        return {**self.params, style.offset_param: self.read, style.limit_param: self.size}


class _Linked(Paginator):
    """A style in which each page names the next: a link the API sends twice would read a
    page twice (or loop for ever), so it is refused."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def _once(self, page: Page, link: str, quoted: str) -> None:
        if link in self._seen:
            raise ValueError(
                f"{page.what}: the API sent {quoted} as the next page again; stopping rather "
                "than reading a page twice"
            )
        self._seen.add(link)


class CursorPaginator(_Linked):
    """The page's ``cursor_path`` holds the next page's token, sent back as ``param`` with the
    YAML's params; the read stops when the token is missing, null or empty."""

    def __init__(self, style: CursorPagination) -> None:
        super().__init__()
        self.style = style
        self._token_of = compile_path(style.cursor_path)
        self.url, self.params = "", dict[str, Any]()

    def first_request(self, url: str, params: dict[str, Any]) -> Request:
        self.url, self.params = url, dict(params)
        return super().first_request(url, params)

    def next_request(self, page: Page, records: list[Any]) -> Request | None:
        token = self._token_of(page.body)
        if token in (None, ""):
            return None
        self._once(page, str(token), repr(str(token)))
        return Request(self.url, {**self.params, self.style.param: token})


class _NextLink(_Linked):
    """The page holds the next page's URL (relative to the page's own); the read stops when
    it has none. The URL is sent as the API gave it (no params added)."""

    def _link(self, page: Page) -> Any:
        """The next page's URL as the page gives it, or a false value for none."""
        raise NotImplementedError

    def next_request(self, page: Page, records: list[Any]) -> Request | None:
        found = self._link(page)
        if not found:
            return None
        url = urljoin(page.url, str(found))
        self._once(page, url, shown(url))
        return Request(url, None, NEXT_PAGE)


class NextUrlPaginator(_NextLink):
    """The next page's URL is in the body, at ``next_path``."""

    def __init__(self, style: NextUrlPagination) -> None:
        super().__init__()
        self._next_of = compile_path(style.next_path)

    def _link(self, page: Page) -> Any:
        return self._next_of(page.body)


class LinkHeaderPaginator(_NextLink):
    """The next page's URL is the ``Link`` header's ``rel="next"`` (RFC 8288), as GitHub's."""

    def _link(self, page: Page) -> Any:
        return page.links.get("next", {}).get("url")


def paginator_for(style: Pagination | None) -> Paginator:
    """A new paginator for the source's ``pagination`` (None: a single page)."""
    if isinstance(style, PagePagination):
        return PageNumberPaginator(style)
    if isinstance(style, OffsetPagination):
        return OffsetPaginator(style)
    if isinstance(style, CursorPagination):
        return CursorPaginator(style)
    if isinstance(style, NextUrlPagination):
        return NextUrlPaginator(style)
    if isinstance(style, LinkHeaderPagination):
        return LinkHeaderPaginator()
    return Paginator()


def _json_kind(value: Any) -> str:
    """What a JSONPath found, for a message: its JSON kind, never its value."""
    if value is None:
        return "matches nothing"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return "is " + kinds.get(type(value), "an array" if isinstance(value, list) else "an object")
