"""The unit lane's guard is on: a unit test cannot reach PostgreSQL (tests/unit/conftest.py)."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa


def test_a_postgresql_connection_fails_the_unit_test() -> None:
    with pytest.raises(AssertionError, match="move it to tests/integration"):
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(AssertionError, match="move it to tests/integration"):
        engine.connect()
