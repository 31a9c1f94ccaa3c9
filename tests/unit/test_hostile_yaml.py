"""Hostile dataset YAML (issue #10, invariant 5): every case of ``tests/hostile/corpus.py`` is
refused by ``load_spec`` with its exact ``line: field: message`` and by ``wharf check`` with
file:line and no traceback; a bounded fuzz test shows any generated file either loads or
fails with Wharf's own error naming it. (The dags folder with every case in it:
tests/dags/test_integrity.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.corpus import CASES, GOOD
from wharf.contract.dataset import DatasetSpec
from wharf.specfiles import SpecError, load_spec, load_spec_cached


def _messages(file: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    return "\n".join(f"{i.line}: {i.field}: {i.message}" for i in caught.value.issues)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_yaml_is_refused_with_its_line(schemas: Path, case: str) -> None:
    data, expected = CASES[case]
    (schemas / "shop").mkdir()
    file = schemas / "shop" / "orders.yaml"
    file.write_bytes(data)
    assert _messages(file) == expected


def test_wharf_check_names_every_hostile_file_without_a_traceback(schemas: Path) -> None:
    (schemas / "shop").mkdir()
    for case, (data, _) in CASES.items():
        (schemas / "shop" / f"{case}.yaml").write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "wharf", "check", str(schemas)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for case, (_, expected) in CASES.items():
        line = expected.split(":", 1)[0]
        assert f"{schemas}/shop/{case}.yaml:{line}: " in result.stderr, case
    assert result.stderr.strip().endswith(
        f"wharf check: {len(CASES)} file(s), {len(CASES)} with errors"
    )


# --- fuzzing: anything a YAML can hold either loads or is Wharf's own error ----------------
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_good = yaml.safe_load(GOOD)
# Keys of GOOD at every depth the contract has, so mutations reach the models' validators.
_PATHS = [
    ("metadata", "domain"),
    ("metadata", "dataset"),
    ("metadata", "owners"),
    ("metadata", "primary_key"),
    ("metadata", "key_value_tags"),
    ("source",),
    ("source", "type"),
    ("source", "query"),
    ("columns",),
    ("columns", 0),
    ("columns", 0, "name"),
    ("columns", 1, "format"),
    ("schedule",),
    ("retry_delay",),
    ("checks",),
    ("load",),
    ("description",),
]


def _mutated(path: tuple[str | int, ...], value: object) -> dict:
    import copy

    doc = copy.deepcopy(_good)
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _assert_loads_or_names_the_file(file: Path) -> None:
    try:
        spec = load_spec(file)
    except SpecError as err:
        assert err.issues and all(i.file == file and i.line >= 1 for i in err.issues)
        assert str(err).startswith(str(file.name)) or str(file) in str(err)
        return
    assert isinstance(spec, DatasetSpec)
    # What loaded also survives the spec cache (JSON) unchanged.
    assert load_spec_cached(file) == spec
    assert load_spec_cached(file) == spec


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FUZZ
@given(path=st.sampled_from(_PATHS), value=_values)
def test_fuzzed_values_load_or_fail_naming_the_file(
    schemas: Path, path: tuple[str | int, ...], value: object
) -> None:
    folder = schemas / "shop"
    folder.mkdir(exist_ok=True)
    file = folder / "orders.yaml"
    file.write_text(yaml.safe_dump(_mutated(path, value), allow_unicode=True))
    _assert_loads_or_names_the_file(file)


@_FUZZ
@given(
    position=st.integers(min_value=0, max_value=len(GOOD)),
    inserted=st.binary(max_size=40),
)
def test_fuzzed_bytes_load_or_fail_naming_the_file(
    schemas: Path, position: int, inserted: bytes
) -> None:
    folder = schemas / "shop"
    folder.mkdir(exist_ok=True)
    file = folder / "orders.yaml"
    raw = GOOD.encode()
    file.write_bytes(raw[:position] + inserted + raw[position:])
    _assert_loads_or_names_the_file(file)
