"""Wharf's role names and who reads a dataset by its sensitivity (issue #13; rAPId: PRIVATE
includes PUBLIC, PROTECTED needs its domain's grant)."""

from __future__ import annotations

import pytest

from wharf.contract.metadata import Metadata
from wharf.contract.roles import Roles
from wharf.contract.sql_rules import filters_rows

OWNERS = [{"name": "T", "email": "t@example.org"}]


def meta(sensitivity: str, domain: str = "parking") -> Metadata:
    return Metadata.model_validate(
        {"domain": domain, "dataset": "permits", "sensitivity": sensitivity, "owners": OWNERS}
    )


def test_reader_roles_follow_rapids_levels() -> None:
    roles = Roles("wharf")
    assert roles.reader(meta("PUBLIC")) == "wharf_public"
    assert roles.reader(meta("PRIVATE")) == "wharf_private"
    assert roles.reader(meta("PROTECTED")) == "wharf_protected_parking"
    assert roles.readers(meta("PUBLIC")) == ("wharf_public", "wharf_private")
    assert roles.readers(meta("PRIVATE")) == ("wharf_private",)
    assert roles.readers(meta("PROTECTED")) == ("wharf_protected_parking",)


def test_the_prefix_keeps_deployments_apart() -> None:
    a, b = Roles("council_a"), Roles("council_b")
    assert set(a.fixed).isdisjoint(b.fixed)
    assert a.managed("council_a_protected_x") and not b.managed("council_a_protected_x")
    assert a.managed("council_a_cut_x_y") and a.managed("council_a_public")
    assert not a.managed("council_a_loader") and not a.managed("analyst")


@pytest.mark.parametrize("prefix", ["", "Wharf", "1st", "a-b", "x" * 25, 'w"; DROP ROLE x'])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="role prefix"):
        Roles(prefix)


def test_long_names_fit_postgresql_and_never_collide_by_truncation() -> None:
    roles = Roles("x" * 24)
    first, second = roles.protected("d" * 60 + "a"), roles.protected("d" * 60 + "b")
    assert len(first) <= 63 and len(second) <= 63
    assert first != second
    assert roles.cut("a.b") == f"{'x' * 24}_cut_a.b"


def test_two_cuts_never_share_a_role() -> None:
    roles = Roles("wharf")
    assert roles.cut("a.b_c") != roles.cut("a_b.c")
    assert roles.protected("a") != roles.cut("a.b") != roles.reader(meta("PUBLIC", "a"))


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("SELECT a FROM s.t", False),
        ("SELECT a, count(*) FROM s.t GROUP BY a", False),
        ("SELECT a FROM s.t WHERE a > 1", True),
        ("SELECT a FROM s.t JOIN s.u ON t.a = u.a", True),
        ("SELECT a FROM s.t JOIN s.u USING (a)", True),
        ("SELECT a FROM s.t CROSS JOIN s.u", False),
        ("SELECT a FROM s.t GROUP BY a HAVING count(*) > 1", True),
        ("SELECT a FROM s.t LIMIT 5", True),
        ("WITH c AS (SELECT a FROM s.t WHERE a > 0) SELECT a FROM c", True),
        ("SELECT a FROM (SELECT a FROM s.t OFFSET 2) q", True),
        ("not sql at all (", True),
    ],
)
def test_a_view_that_drops_rows_gets_a_security_barrier(query: str, filters: bool) -> None:
    assert filters_rows(query) is filters
