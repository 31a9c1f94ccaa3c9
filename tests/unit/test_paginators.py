"""Each pagination style's paginator on plain pages (no server): its first request, its next
request, each rule that stops the read and each message it refuses a page with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter

from wharf.contract.http_source import Pagination
from wharf.extract.paginators import (
    NEXT_PAGE,
    SOURCE_URL,
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    Paginator,
    Request,
    paginator_for,
)

URL = "http://api.test/v1/cars"
PARAMS = {"since": "2026-01-01"}


def paginator(**style: Any) -> Paginator:
    """The paginator for a YAML ``pagination`` mapping."""
    return paginator_for(TypeAdapter(Pagination).validate_python(style))


def page(
    body: Any = None, number: int = 1, url: str = URL, links: dict[str, Any] | None = None
) -> Page:
    return Page(url, body, links or {}, f"autos.cars, page {number}")


def records(count: int, first: int = 1) -> list[dict[str, int]]:
    return [{"id": i} for i in range(first, first + count)]


def read(
    pager: Paginator, answer: Callable[[Request], tuple[list[Any], dict[str, Any]]]
) -> tuple[list[Request], list[Any]]:
    """The request loop without HTTP: ``answer`` gives a request's records and the rest of
    its body (merged as ``{"data": records, **rest}``). Returns the requests sent and the
    records read."""
    sent, read_records = [], []
    request: Request | None = pager.first_request(URL, PARAMS)
    while request is not None:
        sent.append(request)
        assert len(sent) < 50, "the paginator does not stop"
        rows, rest = answer(request)
        current = page({"data": rows, **rest}, len(sent))
        if pager.is_past_end(current, rows):
            break
        read_records.extend(rows)
        request = pager.next_request(current, rows)
    return sent, read_records


# --- the factory -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "style, cls",
    [
        ({"style": "page"}, PageNumberPaginator),
        ({"style": "offset"}, OffsetPaginator),
        ({"style": "cursor", "cursor_path": "$.next"}, CursorPaginator),
        ({"style": "next_url", "next_path": "$.next"}, NextUrlPaginator),
        ({"style": "link_header"}, LinkHeaderPaginator),
    ],
)
def test_each_style_has_its_paginator(style: dict[str, Any], cls: type[Paginator]) -> None:
    assert type(paginator(**style)) is cls


def test_no_pagination_reads_one_page_with_the_yaml_params() -> None:
    pager = paginator_for(None)
    first = pager.first_request(URL, PARAMS)
    assert first == Request(URL, PARAMS, SOURCE_URL)
    assert first.params is not PARAMS  # the loop may not change the source's params
    assert not pager.is_past_end(page([]), [])
    assert pager.next_request(page({"next": "/p2"}), records(3)) is None


# --- page and offset -------------------------------------------------------------------------
def test_page_asks_page_after_page_from_start() -> None:
    pager = paginator(style="page", param="p", size_param="n", size=2, start=0)
    assert pager.first_request(URL, PARAMS) == Request(URL, {**PARAMS, "p": 0, "n": 2})
    assert pager.next_request(page(), records(2)) == Request(URL, {**PARAMS, "p": 1, "n": 2})
    assert pager.next_request(page(number=2), records(2, 3)) == Request(
        URL, {**PARAMS, "p": 2, "n": 2}
    )


def test_page_overrides_a_yaml_param_of_its_name() -> None:
    pager = paginator(style="page", size=5)
    first = pager.first_request(URL, {"page": 9, "q": "x"})
    assert first.params == {"page": 1, "q": "x", "per_page": 5}


def test_offset_asks_for_the_next_record_not_yet_read() -> None:
    pager = paginator(style="offset", offset_param="skip", limit_param="take", limit=3)
    assert pager.first_request(URL, PARAMS) == Request(URL, {**PARAMS, "skip": 0, "take": 3})
    # a server may send fewer than asked: the next offset follows what was read
    assert pager.next_request(page(), records(2)) == Request(URL, {**PARAMS, "skip": 2, "take": 3})
    assert pager.next_request(page(number=2), records(3, 3)) == Request(
        URL, {**PARAMS, "skip": 5, "take": 3}
    )


COUNTED = [
    pytest.param({"style": "page", "size": 3}, id="page"),
    pytest.param({"style": "offset", "limit": 3}, id="offset"),
]


@pytest.mark.parametrize("style", COUNTED)
def test_by_default_only_an_empty_page_ends_the_read(style: dict[str, Any]) -> None:
    data = records(7)
    pages = iter([data[0:3], data[3:5], data[5:7], []])  # the server's own, shorter pages
    sent, got = read(paginator(**style), lambda request: (next(pages), {}))
    assert got == data
    assert len(sent) == 4


@pytest.mark.parametrize("style", COUNTED)
def test_stop_on_short_page_ends_at_a_page_shorter_than_asked(style: dict[str, Any]) -> None:
    pager = paginator(**style, stop_on_short_page=True)
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page(), records(3)) is not None
    assert pager.next_request(page(number=2), records(2, 4)) is None


@pytest.mark.parametrize("style", COUNTED)
def test_total_path_ends_once_that_many_are_read(style: dict[str, Any]) -> None:
    pager = paginator(**style, total_path="$.meta.total")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page({"meta": {"total": "5"}}), records(3)) is not None
    assert pager.next_request(page({"meta": {"total": 5}}, 2), records(2, 4)) is None


@pytest.mark.parametrize("style", COUNTED)
def test_has_more_path_ends_when_false(style: dict[str, Any]) -> None:
    pager = paginator(**style, has_more_path="$.more")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page({"more": True}), records(3)) is not None
    assert pager.next_request(page({"more": False}, 2), records(3, 4)) is None


@pytest.mark.parametrize("style", COUNTED)
def test_the_first_stop_rule_that_says_stop_ends_the_read(style: dict[str, Any]) -> None:
    pager = paginator(**style, total_path="$.total", has_more_path="$.more")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page({"total": 3, "more": True}), records(3)) is None
    pager = paginator(**style, total_path="$.total", has_more_path="$.more")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page({"total": 99, "more": False}), records(3)) is None


@pytest.mark.parametrize(
    "body, kind",
    [
        ({}, "matches nothing"),
        ({"total": -1}, "is a number"),
        ({"total": 2.5}, "is a number"),
        ({"total": True}, "is a boolean"),
        ({"total": "many"}, "is a string"),
        ({"total": [1]}, "is an array"),
        ({"total": {"n": 1}}, "is an object"),
    ],
)
@pytest.mark.parametrize("style", COUNTED)
def test_a_total_that_is_not_a_whole_number_is_refused(
    style: dict[str, Any], body: dict[str, Any], kind: str
) -> None:
    pager = paginator(**style, total_path="$.total")
    pager.first_request(URL, PARAMS)
    with pytest.raises(ValueError) as refused:
        pager.next_request(page(body, url=URL + "?token=s3cret"), records(3))
    assert str(refused.value) == (
        f"autos.cars, page 1 (http://api.test/v1/cars): total_path '$.total' {kind}, "
        "not a whole number of records"
    )


@pytest.mark.parametrize(
    "body, kind",
    [({}, "matches nothing"), ({"more": 1}, "is a number"), ({"more": "false"}, "is a string")],
)
@pytest.mark.parametrize("style", COUNTED)
def test_a_has_more_that_is_not_true_or_false_is_refused(
    style: dict[str, Any], body: dict[str, Any], kind: str
) -> None:
    pager = paginator(**style, has_more_path="$.more")
    pager.first_request(URL, PARAMS)
    with pytest.raises(ValueError) as refused:
        pager.next_request(page(body), records(3))
    assert str(refused.value) == (
        f"autos.cars, page 1 (http://api.test/v1/cars): has_more_path '$.more' {kind}, "
        "not true or false"
    )


@pytest.mark.parametrize(
    "stops, body, says",
    [
        ({"total_path": "$.total"}, {"total": 7}, "$.total says 7"),
        ({"has_more_path": "$.more"}, {"more": True}, "$.more says there are more"),
    ],
)
@pytest.mark.parametrize("style", COUNTED)
def test_an_empty_page_before_the_announced_end_is_refused(
    style: dict[str, Any], stops: dict[str, str], body: dict[str, Any], says: str
) -> None:
    pager = paginator(**style, **stops)
    pager.first_request(URL, PARAMS)
    pager.is_past_end(page(body), records(3))
    pager.next_request(page(body), records(3))
    with pytest.raises(ValueError) as refused:
        pager.is_past_end(page(body, 2), [])
    assert str(refused.value) == (
        f"autos.cars, page 2: an empty page after 3 records, but {says}: the API ended early; "
        "stopping rather than publishing part of it"
    )


@pytest.mark.parametrize(
    "stops, body",
    [
        ({"total_path": "$.total"}, {"total": 3}),
        ({"has_more_path": "$.more"}, {"more": False}),
        # on an empty page only a true says there are more
        ({"has_more_path": "$.more"}, {}),
        ({"has_more_path": "$.more"}, {"more": "yes"}),
    ],
)
@pytest.mark.parametrize("style", COUNTED)
def test_an_empty_page_at_the_announced_end_ends_the_read(
    style: dict[str, Any], stops: dict[str, str], body: dict[str, Any]
) -> None:
    pager = paginator(**style, **stops)
    pager.first_request(URL, PARAMS)
    pager.next_request(page({"total": 99, "more": True}), records(3))
    assert pager.is_past_end(page(body, 2), [])


@pytest.mark.parametrize("style", COUNTED)
def test_a_page_that_repeats_the_one_before_is_refused(style: dict[str, Any]) -> None:
    pager = paginator(**style)
    pager.first_request(URL, PARAMS)
    assert not pager.is_past_end(page(), records(3))
    pager.next_request(page(), records(3))
    with pytest.raises(ValueError) as refused:
        pager.is_past_end(page(number=2), records(3))
    assert str(refused.value) == (
        "autos.cars, page 2: the API sent the records of page 1 again; stopping rather than "
        "reading them twice (an API that repeats its last page past the end needs total_path "
        "or has_more_path to stop)"
    )


@pytest.mark.parametrize("style", COUNTED)
def test_a_page_like_an_earlier_but_not_the_last_one_is_read(style: dict[str, Any]) -> None:
    pages = iter([records(3), records(3, 4), records(3), []])
    _, got = read(paginator(**style), lambda request: (next(pages), {}))
    assert got == records(3) + records(3, 4) + records(3)


# --- cursor ----------------------------------------------------------------------------------
def test_cursor_sends_the_token_back_with_the_yaml_params() -> None:
    pager = paginator(style="cursor", cursor_path="$.meta.next", param="after")
    assert pager.first_request(URL, PARAMS) == Request(URL, PARAMS, SOURCE_URL)
    second = pager.next_request(page({"meta": {"next": "abc"}}), records(2))
    assert second == Request(URL, {**PARAMS, "after": "abc"}, SOURCE_URL)
    third = pager.next_request(page({"meta": {"next": 0}}, 2), records(2))  # 0 is a token
    assert third == Request(URL, {**PARAMS, "after": 0}, SOURCE_URL)


@pytest.mark.parametrize("body", [{}, {"next": None}, {"next": ""}])
def test_cursor_ends_when_the_token_is_missing_null_or_empty(body: dict[str, Any]) -> None:
    pager = paginator(style="cursor", cursor_path="$.next")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page(body), records(2)) is None


def test_a_repeated_cursor_is_refused() -> None:
    pager = paginator(style="cursor", cursor_path="$.next")
    pager.first_request(URL, PARAMS)
    pager.next_request(page({"next": "abc"}), records(2))
    pager.next_request(page({"next": "def"}, 2), records(2))
    with pytest.raises(ValueError) as refused:
        pager.next_request(page({"next": "abc"}, 3), records(2))
    assert str(refused.value) == (
        "autos.cars, page 3: the API sent 'abc' as the next page again; stopping rather than "
        "reading a page twice"
    )


# --- next_url and link_header ----------------------------------------------------------------
LINKED = [
    pytest.param(
        {"style": "next_url", "next_path": "$.links.next"},
        lambda link: page({"links": {"next": link}}),
        id="next_url",
    ),
    pytest.param(
        {"style": "link_header"},
        lambda link: page(links={"next": {"url": link}} if link is not None else {}),
        id="link_header",
    ),
]


@pytest.mark.parametrize("style, linking", LINKED)
def test_a_next_link_is_followed_as_given_relative_to_the_page(
    style: dict[str, Any], linking: Callable[[Any], Page]
) -> None:
    pager = paginator(**style)
    assert pager.first_request(URL, PARAMS) == Request(URL, PARAMS, SOURCE_URL)
    assert pager.next_request(linking("?page=2&token=t"), records(2)) == Request(
        URL + "?page=2&token=t", None, NEXT_PAGE
    )
    assert pager.next_request(linking("/v2/cars?p=3"), records(2)) == Request(
        "http://api.test/v2/cars?p=3", None, NEXT_PAGE
    )


@pytest.mark.parametrize("style, linking", LINKED)
def test_a_link_elsewhere_is_left_to_the_origin_check(
    style: dict[str, Any], linking: Callable[[Any], Page]
) -> None:
    """The paginator passes it on, saying where it came from; the client refuses it."""
    pager = paginator(**style)
    pager.first_request(URL, PARAMS)
    request = pager.next_request(linking("https://evil.test/steal"), records(2))
    assert request == Request("https://evil.test/steal", None, NEXT_PAGE)


@pytest.mark.parametrize("style, linking", LINKED)
@pytest.mark.parametrize("link", [None, ""])
def test_no_next_link_ends_the_read(
    style: dict[str, Any], linking: Callable[[Any], Page], link: str | None
) -> None:
    pager = paginator(**style)
    pager.first_request(URL, PARAMS)
    assert pager.next_request(linking(link), records(2)) is None


def test_a_next_url_path_that_matches_nothing_ends_the_read() -> None:
    pager = paginator(style="next_url", next_path="$.links.next")
    pager.first_request(URL, PARAMS)
    assert pager.next_request(page({"data": []}), records(2)) is None


@pytest.mark.parametrize("style, linking", LINKED)
def test_a_repeated_next_link_is_refused_without_its_query(
    style: dict[str, Any], linking: Callable[[Any], Page]
) -> None:
    pager = paginator(**style)
    pager.first_request(URL, PARAMS)
    pager.next_request(linking("?page=2&token=s3cret"), records(2))
    with pytest.raises(ValueError) as refused:
        pager.next_request(linking("?page=2&token=s3cret"), records(2))
    assert str(refused.value) == (
        "autos.cars, page 1: the API sent http://api.test/v1/cars as the next page again; "
        "stopping rather than reading a page twice"
    )
