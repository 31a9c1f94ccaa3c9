"""`make airflow`'s defaults and what it prints before starting: the URL, who logs in and
where simple auth manager keeps the password it generates (no Airflow starts here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wharf import environment
from wharf.cli.main import main


def test_the_api_server_listens_on_localhost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__API__HOST", raising=False)
    environment.apply(start_database=False)
    assert os.environ["AIRFLOW__API__HOST"] == "127.0.0.1"


def test_a_users_api_host_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")
    environment.apply(start_database=False)
    assert os.environ["AIRFLOW__API__HOST"] == "0.0.0.0"


def _info(capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main(["airflow-info"]) == 0
    return capsys.readouterr().out.splitlines()


def test_airflow_info_prints_the_url_the_user_and_the_password_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import airflow.configuration

    for key in ("AIRFLOW__API__HOST", "AIRFLOW__API__PORT", "AIRFLOW__API__BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", raising=False)
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    # An AIRFLOW_HOME of its own: the session's may hold a file an API server wrote.
    monkeypatch.setattr(airflow.configuration, "AIRFLOW_HOME", str(tmp_path))
    passwords = tmp_path / "simple_auth_manager_passwords.json.generated"
    lines = [
        "Airflow UI: http://127.0.0.1:8080 (listening on 127.0.0.1 only)",
        "Log in as: admin (role admin)",
        f"Password: in {passwords} (written on the first start)",
        "Wharf's DAGs start unpaused: pause one with its toggle in the UI or "
        "`airflow dags pause <domain>.<dataset>`",
    ]

    assert _info(capsys) == lines
    passwords.write_text('{"admin": "not printed"}')  # after the first start
    lines[2] = f"Password: in {passwords}"
    assert _info(capsys) == lines


def test_airflow_info_follows_the_users_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwords.json"
    passwords.write_text('{"ops": "not printed"}')
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")
    monkeypatch.setenv("AIRFLOW__API__PORT", "8793")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "ops:admin,eve:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))

    out = _info(capsys)
    assert out[:3] == [
        "Airflow UI: http://localhost:8793 (listening on every interface: 0.0.0.0)",
        "Log in as: ops (role admin), eve (role viewer)",
        f"Password: in {passwords}",
    ]
    assert "not printed" not in "\n".join(out)


def test_airflow_info_names_the_file_simple_auth_manager_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    from wharf.cli.airflow_info import passwords_file

    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    assert passwords_file() == Path(SimpleAuthManager.get_generated_password_file())


def test_airflow_info_says_when_no_login_is_needed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    out = _info(capsys)
    assert out[1] == (
        "Log in as: nobody, simple_auth_manager_all_admins is on: every visitor is an admin"
    )
    assert not any(line.startswith("Password:") for line in out)
