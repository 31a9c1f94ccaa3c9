"""Issue #16 item 5: a domain's DAG file loads only its domain (``load_domain_specs``) and
gets exactly what ``load_specs`` gives for that domain, the rules between YAMLs included:
a cut's inputs, cycles and sensitivity across domains. It reads another domain's YAML only
when one of its cuts reads that dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from wharf import specfiles
from wharf.specfiles import dag_specs, domains, get_spec, load_domain_specs, load_specs

SOURCE = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
source: {{type: file, path: x.csv}}
columns:
  - {{name: a, data_type: integer}}
"""
CUT = """\
metadata:
  domain: {domain}
  dataset: {dataset}
  kind: data_cut
  sensitivity: {sensitivity}
  owners: [{{name: Tests, email: tests@example.org}}]
sql: {domain}_{dataset}.sql
columns:
  - {{name: a, data_type: integer}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "include" / "sql").mkdir(parents=True)
    monkeypatch.setenv("WHARF_HOME", str(home))
    monkeypatch.setenv("WHARF_SCHEMAS_DIR", str(home / "include" / "schemas"))
    monkeypatch.setenv("WHARF_SPEC_CACHE_DIR", str(tmp_path / "cache"))
    source = [
        ("shop", "orders", "PUBLIC"),
        ("shop", "returns", "PUBLIC"),
        ("hr", "staff", "PRIVATE"),
        ("hr", "salaries", "PROTECTED"),
    ]
    for domain, dataset, sensitivity in source:
        text = SOURCE.format(domain=domain, dataset=dataset, sensitivity=sensitivity)
        _write(home, domain, dataset, text)
    _write(home, "hr", "broken", "metadata:\n  domain: hr\n  colour: blue\n")
    twice = SOURCE.format(domain="shop", dataset="orders", sensitivity="PUBLIC")
    _write(home, "shop", "orders", twice, suffix=".yml")
    cuts = [  # (domain, dataset, sensitivity, sql)
        ("finance", "sales", "PUBLIC", "SELECT a FROM shop.orders"),  # across domains, allowed
        ("finance", "pay", "PUBLIC", "SELECT a FROM hr.staff"),  # less sensitive than an input
        ("finance", "typo", "PRIVATE", "SELECT a FROM hr.stafff"),  # unknown: hr.staff?
        ("finance", "secret", "PROTECTED", "SELECT a FROM hr.salaries"),  # PROTECTED leaves hr
        ("finance", "odd", "PRIVATE", "SELECT a FROM hr.broken"),  # a YAML, though broken
        ("finance", "loop", "PUBLIC", "SELECT a FROM shop.orders JOIN shop.back USING (a)"),
        ("shop", "back", "PUBLIC", "SELECT a FROM finance.loop"),  # a cycle across domains
        ("shop", "after", "PUBLIC", "SELECT a FROM shop.back"),  # reads the cycle: allowed
    ]
    for domain, dataset, sensitivity, sql in cuts:
        (home / "include" / "sql" / f"{domain}_{dataset}.sql").write_text(sql)
        text = CUT.format(domain=domain, dataset=dataset, sensitivity=sensitivity)
        _write(home, domain, dataset, text)
    return home


def _write(home: Path, domain: str, dataset: str, text: str, suffix: str = ".yaml") -> None:
    file = home / "include" / "schemas" / domain / f"{dataset}{suffix}"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)


def _ids(specs: list) -> list[str]:
    return sorted(s.dataset_id for s in specs)


def test_each_domain_gets_what_load_specs_gives_it(project: Path) -> None:
    every, every_error = load_specs()
    assert domains() == ["finance", "hr", "shop"]
    for domain in domains():
        specs, errors = load_domain_specs(domain)
        assert _ids(specs) == _ids([s for s in every if s.metadata.domain == domain]), domain
        folder = f"/schemas/{domain}/"
        assert sorted(map(str, errors)) == sorted(str(e) for e in every_error if folder in str(e))
    assert _ids(load_domain_specs("finance")[0]) == ["finance.odd", "finance.sales"]
    text = "\n".join(map(str, load_domain_specs("finance")[1]))
    assert "less sensitive than" in text or "hr.staff, which is PRIVATE" in text
    assert "unknown table hr.stafff (did you mean hr.staff?)" in text
    assert "data cuts read each other in a cycle: finance.loop -> shop.back -> finance.loop" in text
    assert _ids(load_domain_specs("shop")[0]) == ["shop.after", "shop.orders", "shop.returns"]
    assert "shop.orders is defined twice" in "\n".join(map(str, load_domain_specs("shop")[1]))


def test_a_domain_reads_only_its_own_yamls_and_its_cuts_inputs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    real = specfiles.load_spec_cached

    def spy(file: Path):  # type: ignore[no-untyped-def]
        read.append(f"{file.parent.name}/{file.name}")
        return real(file)

    monkeypatch.setattr(specfiles, "load_spec_cached", spy)
    load_domain_specs("finance")
    others = sorted({f for f in read if not f.startswith("finance/")})
    assert others == [
        "hr/broken.yaml",
        "hr/salaries.yaml",
        "hr/staff.yaml",
        "shop/back.yaml",
        "shop/orders.yaml",
    ]
    assert "shop/returns.yaml" not in read and "shop/orders.yml" not in read
    read.clear()
    load_domain_specs("hr")  # no cuts: nothing of the others
    assert all(f.startswith("hr/") for f in read), read


def test_a_task_start_reads_only_its_own_yaml(project: Path) -> None:
    assert _ids(dag_specs(["shop"], "shop.returns")) == ["shop.returns"]
    assert dag_specs(["finance"], "shop.returns") == []  # another file's DAG
    assert _ids(dag_specs(["shop", "hr"], None)) == [
        "hr.salaries",
        "hr.staff",
        "shop.after",
        "shop.orders",
        "shop.returns",
    ]


def test_an_id_that_is_not_two_names_never_reaches_a_path(project: Path) -> None:
    outside = project / "include" / "secret.yaml"
    outside.write_text(SOURCE.format(domain="shop", dataset="secret", sensitivity="PUBLIC"))
    with pytest.raises(FileNotFoundError):
        get_spec("shop.../secret")
    assert load_domain_specs("..") == ([], [])


def test_a_symlink_out_of_the_schemas_folder_is_never_read(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A domain folder or a YAML that is a symlink out of the schemas folder (a YAML-only
    pull request can commit one): the DAG files read nothing through it (``zz -> /`` walked
    the whole disk and built DAGs of YAMLs found anywhere), ``get_spec`` neither, and
    ``wharf check`` names each as an error."""
    from wharf.cli.main import main

    schemas = project / "include" / "schemas"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ops").mkdir(parents=True)
    (elsewhere / "ops" / "jobs.yaml").write_text(
        SOURCE.format(domain="zz", dataset="jobs", sensitivity="PUBLIC")
    )
    (elsewhere / "leak.yaml").write_text(
        SOURCE.format(domain="shop", dataset="leak", sensitivity="PUBLIC")
    )
    (schemas / "zz").symlink_to(elsewhere / "ops")
    (schemas / "shop" / "leak.yaml").symlink_to(elsewhere / "leak.yaml")
    before = _ids(load_specs()[0])

    assert "zz" not in domains()
    assert load_domain_specs("zz") == ([], [])
    assert "shop.leak" not in _ids(load_domain_specs("shop")[0])
    assert "shop.leak" not in before and "zz.jobs" not in before
    with pytest.raises(FileNotFoundError, match="no YAML for dataset shop.leak"):
        get_spec("shop.leak")

    assert main(["check", str(schemas)]) == 1
    err = capsys.readouterr().err
    for link in (schemas / "zz", schemas / "shop" / "leak.yaml"):
        assert (
            f"{link}:1: a symlink out of the schemas folder: Wharf reads no YAML outside "
            "it (commit the file itself)"
        ) in err
