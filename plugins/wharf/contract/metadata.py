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
    name: str = Field(min_length=1, max_length=200)
    email: Annotated[
        str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), AfterValidator(_owner_email)
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
    domain: DomainName
    dataset: DatasetName
    kind: Literal["source", "reference", "data_cut"] = "source"
    # Shown as the DAG's doc_md and the table's COMMENT.
    description: str = Field(default="", max_length=10_000)
    sensitivity: Literal["PUBLIC", "PRIVATE", "PROTECTED"] = "PUBLIC"
    version: int | None = Field(default=None, ge=1)
    # rAPId's storage layer; kept so a rAPId schema pastes in unchanged (Wharf has one).
    layer: str | None = None
    owners: tuple[Owner, ...] = ()
    key_value_tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    key_only_tags: tuple[TagKey, ...] = ()
    update_behaviour: Literal["APPEND", "OVERWRITE", "MERGE"] = "APPEND"
    is_latest_version: bool = True
    primary_key: tuple[ColumnName, ...] = ()

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
