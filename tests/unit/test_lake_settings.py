"""The lake's settings per domain (``WHARF_LAKE_ROOTS``, ``WHARF_LAKE_CONN_IDS``): a listed
domain gets its own root and connection, any other the default ones; a bad entry is a
``TerminalError`` naming the variable and the entry, never a key."""

from __future__ import annotations

import re

import pytest

from wharf import settings
from wharf.contract import names
from wharf.errors import TerminalError

SECRET = "lake-secret-canary-77a0"


@pytest.fixture(autouse=True)
def _lake(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("WHARF_LAKE_ROOT", "s3://default-lake/lake")
    monkeypatch.setenv("WHARF_LAKE_CONN_ID", "lake_default")
    monkeypatch.delenv("WHARF_LAKE_ROOTS", raising=False)
    monkeypatch.delenv("WHARF_LAKE_CONN_IDS", raising=False)
    return monkeypatch


def configure(monkeypatch: pytest.MonkeyPatch, roots: str = "", conn_ids: str = "") -> None:
    monkeypatch.setenv("WHARF_LAKE_ROOTS", roots)
    monkeypatch.setenv("WHARF_LAKE_CONN_IDS", conn_ids)


def test_a_listed_domain_has_its_own_root_and_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(
        monkeypatch,
        " parking = s3://parking-lake/ , council_tax=s3://shared-lake/council_tax/,",
        "parking=aws_parking,council_tax=aws.council-tax",
    )
    assert settings.lake_root("parking") == "s3://parking-lake"
    assert settings.lake_conn_id("parking") == "aws_parking"
    assert settings.lake_root("council_tax") == "s3://shared-lake/council_tax"
    assert settings.lake_conn_id("council_tax") == "aws.council-tax"


def test_any_other_domain_uses_the_default_root_and_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, "parking=s3://parking-lake", "housing=aws_housing")
    assert settings.lake_root("shop") == "s3://default-lake/lake"
    assert settings.lake_conn_id("shop") == "lake_default"
    assert settings.lake_root() == "s3://default-lake/lake"
    assert settings.lake_conn_id() == "lake_default"
    # a connection alone: the default root, reached through the domain's own connection
    assert settings.lake_root("housing") == "s3://default-lake/lake"
    assert settings.lake_conn_id("housing") == "aws_housing"
    # a root alone: the default connection
    assert settings.lake_conn_id("parking") == "lake_default"


def test_unset_the_lake_is_a_local_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHARF_LAKE_ROOT")
    monkeypatch.delenv("WHARF_LAKE_CONN_ID")
    monkeypatch.setenv("WHARF_HOME", "/srv/wharf")
    assert settings.lake_root("shop") == "file:///srv/wharf/.wharf/lake"
    assert settings.lake_conn_id("shop") == "aws_default"


def test_domains_may_share_a_root_and_local_roots_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, "parking=s3://default-lake/lake,housing=file:///srv/lakes/housing/")
    assert settings.lake_root("parking") == "s3://default-lake/lake"
    assert settings.lake_root("housing") == "file:///srv/lakes/housing"


@pytest.mark.parametrize(
    ("roots", "message"),
    [
        ("parking", "WHARF_LAKE_ROOTS: entry 1 'parking' is not domain=value"),
        ("parking=", "WHARF_LAKE_ROOTS: entry 1 'parking=' is not domain=value"),
        (
            "parking=s3://a-lake,Parking=s3://b-lake",
            "WHARF_LAKE_ROOTS: entry 2 'Parking=s3://b-lake': the domain is not a name",
        ),
        (
            "council-tax=s3://b-lake",
            "WHARF_LAKE_ROOTS: entry 1 'council-tax=s3://b-lake': the domain is not a name",
        ),
        (
            "parking=s3://a-lake,parking=s3://b-lake",
            "WHARF_LAKE_ROOTS: entry 2 'parking=s3://b-lake': domain 'parking' is listed twice",
        ),
        ("parking=gs://a-lake", "WHARF_LAKE_ROOTS: 'parking=gs://a-lake' is not a lake root"),
        ("parking=/srv/lake", "WHARF_LAKE_ROOTS: 'parking=/srv/lake' is not a lake root"),
        (
            "parking=file://srv/lake",
            "WHARF_LAKE_ROOTS: 'parking=file://srv/lake' is not a lake root",
        ),
        ("parking=file:///", "WHARF_LAKE_ROOTS: 'parking=file:///' is not a lake root"),
        ("parking=s3://", "WHARF_LAKE_ROOTS: 'parking=s3://' is not a lake root"),
        (
            "parking=s3://Parking_Lake/x",
            "WHARF_LAKE_ROOTS: 'parking=s3://Parking_Lake/x' is not a lake root",
        ),
        (
            "parking=s3://default-lake/lake/parking",
            "WHARF_LAKE_ROOTS entry 'parking' (s3://default-lake/lake/parking) lies below "
            "WHARF_LAKE_ROOT (s3://default-lake/lake)",
        ),
        (
            "parking=s3://shared-lake,housing=s3://shared-lake/housing",
            "WHARF_LAKE_ROOTS entry 'housing' (s3://shared-lake/housing) lies below "
            "WHARF_LAKE_ROOTS entry 'parking' (s3://shared-lake)",
        ),
    ],
)
def test_a_bad_root_entry_is_named(
    monkeypatch: pytest.MonkeyPatch, roots: str, message: str
) -> None:
    configure(monkeypatch, roots)
    with pytest.raises(TerminalError, match="^" + re.escape(message)):
        settings.lake_root("shop")  # any lake access: a wrong entry stops every domain


def test_a_sibling_prefix_is_not_below(monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, "parking=s3://default-lake/lakehouse")
    assert settings.lake_root("parking") == "s3://default-lake/lakehouse"


@pytest.mark.parametrize(
    ("conn_ids", "message"),
    [
        ("parking", "WHARF_LAKE_CONN_IDS: entry 1 'parking' is not domain=value"),
        ("parking=aws parking", "WHARF_LAKE_CONN_IDS: entry 'parking=aws parking': not an Airflow"),
        ("9parking=aws", "WHARF_LAKE_CONN_IDS: entry 1 '9parking=aws': the domain is not a name"),
    ],
)
def test_a_bad_connection_entry_is_named(
    monkeypatch: pytest.MonkeyPatch, conn_ids: str, message: str
) -> None:
    configure(monkeypatch, conn_ids=conn_ids)
    with pytest.raises(TerminalError, match="^" + re.escape(message)):
        settings.lake_conn_id("shop")


def test_the_default_root_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARF_LAKE_ROOT", "gs://a-lake")
    with pytest.raises(TerminalError, match="^WHARF_LAKE_ROOT: 'gs://a-lake' is not a lake root"):
        settings.lake_root()
    monkeypatch.setenv("WHARF_LAKE_ROOT", "s3://default-lake/lake")
    monkeypatch.setenv("WHARF_LAKE_CONN_ID", "lake default")
    with pytest.raises(TerminalError, match="^WHARF_LAKE_CONN_ID 'lake default': not an Airflow"):
        settings.lake_root()


@pytest.mark.parametrize(
    ("roots", "message"),
    [
        (
            f"parking=s3://key-id:{SECRET}@parking-lake/",
            "WHARF_LAKE_ROOTS: the root of domain 'parking' holds user info or a query: write "
            "s3://bucket/prefix and put the keys, region and endpoint in the Airflow "
            "connection 'aws_parking'",
        ),
        (f"parking=s3://parking-lake/?secret_key={SECRET}", "WHARF_LAKE_ROOTS: the root of"),
        (f"s3://key-id:{SECRET}@parking-lake/", "WHARF_LAKE_ROOTS: entry 1 (not shown"),
        (f"parking=gs://key-id:{SECRET}@parking-lake/", "WHARF_LAKE_ROOTS: the root of"),
        (f"parking=file://srv/{SECRET}@x", "WHARF_LAKE_ROOTS: 'parking=…' is not a lake root"),
    ],
)
def test_a_root_holding_keys_is_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, roots: str, message: str
) -> None:
    configure(monkeypatch, roots, "parking=aws_parking")
    with pytest.raises(TerminalError, match="^" + re.escape(message)) as raised:
        settings.lake_root("parking")
    assert SECRET not in str(raised.value)


def test_the_copied_name_rules_match_the_contract() -> None:
    assert settings.DOMAIN_PATTERN.pattern == names.NAME_PATTERN.pattern
    assert settings.CONN_ID_PATTERN.pattern == names._CONN_ID.pattern
    assert settings.BUCKET_PATTERN.pattern == names.S3_BUCKET_PATTERN.pattern


def test_a_yaml_names_no_lakes_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lake's AWS connection writes every zone of its domains: an s3:// file source
    naming one would read with it (another domain's, or its own lake's credentials), so
    it is Wharf's own; ``aws_default``, every s3:// source's default, stays a source's."""
    from wharf.contract.dataset import DatasetSpec

    configure(monkeypatch, conn_ids="parking=aws_parking")
    monkeypatch.setenv("WHARF_LAKE_CONN_ID", "aws_lake")
    monkeypatch.setenv("WHARF_S3_BUCKETS", "drops")

    def spec(conn_id: str) -> DatasetSpec:
        return DatasetSpec.model_validate(
            {
                "metadata": {
                    "domain": "shop",
                    "dataset": "orders",
                    "owners": [{"name": "Shop", "email": "shop@example.org"}],
                },
                "source": {"type": "file", "path": "s3://drops/x.csv", "conn_id": conn_id},
                "columns": [{"name": "id", "data_type": "integer"}],
            }
        )

    for lake in ("aws_parking", "AWS_LAKE"):
        with pytest.raises(ValueError, match=f"'{lake}' is Wharf's own connection \\(a lake's"):
            spec(lake)
    assert spec("aws_default").source.conn_id == "aws_default"  # type: ignore[union-attr]
