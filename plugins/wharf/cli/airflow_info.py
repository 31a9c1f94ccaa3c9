"""``wharf airflow-info``: where the Airflow UI of ``make airflow`` listens and how to log in.

Read from Airflow's own configuration (environment, then ``airflow.cfg``) after Wharf's
defaults are applied, so it says what ``airflow standalone`` will do. Never prints a password:
only the file in which simple auth manager keeps the ones it generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from wharf import environment

# Hosts meaning "every interface": a browser on this machine reaches them as localhost.
_EVERY_INTERFACE = {"0.0.0.0", "::", ""}


def cmd_airflow_info() -> int:
    """Print four lines: the UI's URL and interfaces, the users who log in (with their
    roles), the password file, and how to pause a DAG. Exit 0."""
    environment.apply(start_database=False)
    for line in airflow_info():
        print(line, flush=True)
    return 0


def airflow_info() -> list[str]:
    """The lines ``wharf airflow-info`` prints (``airflow standalone`` always uses simple
    auth manager)."""
    from airflow.configuration import conf

    lines = [f"Airflow UI: {_url()}"]
    if conf.getboolean("core", "simple_auth_manager_all_admins"):
        lines.append(
            "Log in as: nobody, simple_auth_manager_all_admins is on: every visitor is an admin"
        )
    else:
        users = [entry.split(":") for entry in conf.getlist("core", "simple_auth_manager_users")]
        lines.append("Log in as: " + ", ".join(_user(*user) for user in users))
        file = passwords_file()
        first = "" if file.exists() else " (written on the first start)"
        lines.append(f"Password: in {file}{first}")
    lines.append(
        "Wharf's DAGs start unpaused: pause one with its toggle in the UI or "
        "`airflow dags pause <domain>.<dataset>`"
    )
    return lines


def _user(name: str, role: str = "", *teams: str) -> str:
    """``name (role role)`` of one ``[core] simple_auth_manager_users`` entry."""
    return f"{name} (role {role})" if role else name


def _url() -> str:
    """``http://host:port (listening on ...)``, or ``[api] base_url`` when it is a URL."""
    from airflow.configuration import conf

    host, port = conf.get("api", "host"), conf.get("api", "port")
    base_url = conf.get("api", "base_url", fallback="") or ""
    if host in _EVERY_INTERFACE:
        where, host = f"listening on every interface: {host or '0.0.0.0'}", "localhost"
    else:
        where = f"listening on {host} only"
    host = f"[{host}]" if ":" in host else host  # an IPv6 address
    url = base_url if base_url.startswith(("http://", "https://")) else f"http://{host}:{port}"
    return f"{url} ({where})"


def passwords_file() -> Path:
    """The file in which simple auth manager writes the passwords it generates:
    ``[core] simple_auth_manager_passwords_file``, else
    ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated`` (as
    ``SimpleAuthManager.get_generated_password_file``, which imports the API server)."""
    from airflow.configuration import AIRFLOW_HOME, conf

    configured = conf.get("core", "simple_auth_manager_passwords_file", fallback=None)
    return Path(
        configured or os.path.join(AIRFLOW_HOME, "simple_auth_manager_passwords.json.generated")
    )
