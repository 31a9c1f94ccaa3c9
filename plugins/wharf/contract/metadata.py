"""rAPId's ``metadata`` block: owners, tags, sensitivity, update_behaviour and the key."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from wharf.contract.base import ContractModel, rapid_error
from wharf.contract.names import ColumnName, DatasetName, DomainName

# --- metadata and columns (rAPId) ----------------------------------------------------------
# rAPId's rules (api/application/services/schema_validation.py and config/constants.py).
RAPID_PLACEHOLDER_OWNER = "change_me@email.com"
RAPID_MAX_TAGS = 30
_TAG_KEY = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_TAG_VALUE = re.compile(r"[a-zA-Z0-9_-]{0,256}")


def _owner_email(value: str) -> str:
    if value == RAPID_PLACEHOLDER_OWNER:
        raise rapid_error(
            "You must change the default owner",
            "{value} is rAPId's placeholder owner; name the real owner",
            value=repr(value),
        )
    return value


class Owner(ContractModel):
    """Who answers for the dataset (rAPId's ``owners`` entry)."""

    name: str = Field(
        min_length=1, max_length=200, description="The owner's name: a person or a team."
    )
    email: Annotated[
        str,
        Field(
            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
            description="Where to reach the owner; rAPId's placeholder `change_me@email.com` "
            "is refused.",
        ),
        AfterValidator(_owner_email),
    ]


def _tag_key(value: str) -> str:
    if not _TAG_KEY.fullmatch(value):
        raise rapid_error(
            "Tag keys can only include alphanumeric characters, underscores and hyphens "
            "between 1 and 128 characters",
            "tag key {value} is not allowed",
            value=repr(value),
        )
    if value.startswith("aws"):
        raise rapid_error(
            "You cannot prefix tags with `aws`",
            "tag key {value} starts with 'aws'",
            value=repr(value),
        )
    return value


def _tag_value(value: str) -> str:
    if not _TAG_VALUE.fullmatch(value):
        raise rapid_error(
            "Tag values can only include alphanumeric characters, underscores and hyphens up "
            "to 256 characters",
            "tag value {value} is not allowed",
            value=repr(value),
        )
    return value


TagKey = Annotated[str, AfterValidator(_tag_key)]
TagValue = Annotated[str, AfterValidator(_tag_value)]


class Metadata(ContractModel):
    """rAPId's ``metadata`` block: what the dataset is, who owns it, how it loads."""

    domain: DomainName = Field(
        description="Becomes the PostgreSQL schema: lowercase letters, digits and `_`, "
        "starting with a letter, at most 63 characters (PostgreSQL truncates longer names); "
        "not `wharf`, `wharf_*`, `public`, `information_schema` or `pg_*`, which are Wharf's "
        "or PostgreSQL's own schemas."
    )
    dataset: DatasetName = Field(
        description="Becomes the table name (the same rule as `domain`); the file must be "
        "`<domain>/<dataset>.yaml`."
    )
    kind: Literal["source", "reference", "data_cut"] = Field(
        default="source",
        description="`source` reads its `source`; `reference` reads a file in "
        "`include/reference/`; `data_cut` is a view over other datasets (`sql`).",
    )
    description: str = Field(
        default="",
        max_length=10_000,
        description="Shown as the DAG's doc and the table's `COMMENT`.",
    )
    sensitivity: Literal["PUBLIC", "PRIVATE", "PROTECTED"] = Field(
        default="PUBLIC",
        description="Who may read the table (rAPId): PRIVATE readers also see PUBLIC; "
        "PROTECTED needs an explicit grant for its domain.",
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="rAPId's schema version, accepted so a rAPId schema pastes in unchanged.",
    )
    layer: str | None = Field(
        default=None,
        description="rAPId's storage layer, accepted so a rAPId schema pastes in unchanged "
        "(Wharf has one).",
    )
    owners: tuple[Owner, ...] = Field(
        default=(),
        description="At least one owner (rAPId: you must specify at least one owner).",
    )
    key_value_tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        description="rAPId's tags: keys of 1-128 letters, digits, `_` or `-`, not starting "
        "with `aws`; values of up to 256 of the same; at most 30 tags with `key_only_tags`.",
    )
    key_only_tags: tuple[TagKey, ...] = Field(
        default=(),
        description="rAPId's tags without a value: the same key rule, counted with "
        "`key_value_tags`.",
    )
    update_behaviour: Literal["APPEND", "OVERWRITE", "MERGE"] = Field(
        default="APPEND",
        description="rAPId's: `APPEND` adds this run's rows, replacing the rows of the same "
        "logical date; `OVERWRITE` replaces the whole table; `MERGE` upserts by "
        "`primary_key` (rows not in the batch stay).",
    )
    is_latest_version: bool = Field(
        default=True,
        description="rAPId's flag, accepted so a rAPId schema pastes in unchanged.",
    )
    primary_key: tuple[ColumnName, ...] = Field(
        default=(),
        description="Column names, each in `columns` with `allow_null: false`; becomes the "
        "table's `PRIMARY KEY`. `MERGE` needs it.",
    )

    @model_validator(mode="after")
    def _rapid_rules(self) -> Metadata:
        if not self.owners:
            raise rapid_error(
                "You must specify at least one owner",
                "name at least one owner, with a name and an email",
                at=("owners",),
            )
        tags = set(self.key_value_tags) | set(self.key_only_tags)
        if len(tags) > RAPID_MAX_TAGS:
            raise rapid_error(
                f"You cannot specify more than {RAPID_MAX_TAGS} tags",
                f"{len(tags)} tags given (key_value_tags and key_only_tags together)",
                at=("key_value_tags",),
            )
        return self
