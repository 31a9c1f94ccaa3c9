"""``COMMENT ON`` a published table or view and its columns, from the YAML."""

from __future__ import annotations

from psycopg import sql

from wharf.connections import Cursor, qualified
from wharf.contract.columns import LOADED_AT_COLUMN, LOGICAL_DATE_COLUMN, RUN_ID_COLUMN
from wharf.contract.dataset import DatasetSpec


def comment(cur: Cursor, spec: DatasetSpec, relation: str = "TABLE") -> None:
    """``COMMENT ON`` the relation and each described column, from the YAML."""
    target = qualified(spec.metadata.domain, spec.metadata.dataset)
    # Only what the YAML describes: a comment made by hand where it says nothing stays.
    if spec.metadata.description:
        cur.execute(
            sql.SQL("COMMENT ON {} {} IS {}").format(
                sql.SQL(relation), target, sql.Literal(spec.metadata.description)
            )
        )
    for column in spec.columns:
        if column.description:
            cur.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    target, sql.Identifier(column.name), sql.Literal(column.description)
                )
            )
    if relation == "TABLE":
        for name, text in (
            (RUN_ID_COLUMN, "Airflow run_id of the run that last wrote this row."),
            (LOGICAL_DATE_COLUMN, "Logical date of that run; a re-run of the date replaces it."),
            (LOADED_AT_COLUMN, "When that run's load transaction began."),
        ):
            cur.execute(
                sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                    target, sql.Identifier(name), sql.Literal(text)
                )
            )
