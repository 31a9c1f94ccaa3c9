"""docker-compose.yaml is checked statically (no Docker engine runs here): against the Compose
Specification's JSON schema (``compose_spec/``: the copy PyPI's docker-compose 1.29.2 ships,
with its licence), its service graph against the one of Airflow 3's official compose file
(docs: "Running Airflow in Docker"; written down below, not copied: no package registry ships
that file, and the tool that could fetch it forbids committing what it brings), and the image's
runtime-only lock."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Airflow 3's official docker-compose.yaml (CeleryExecutor): each service -> {dependency:
# condition}, and its profiles. "init" below is a dependency on airflow-init completing.
_BASE = {"redis": "service_healthy", "postgres": "service_healthy"}
_AFTER_INIT = {**_BASE, "airflow-init": "service_completed_successfully"}
OFFICIAL_GRAPH: dict[str, dict[str, str]] = {
    "postgres": {},
    "redis": {},
    "airflow-apiserver": _AFTER_INIT,
    "airflow-scheduler": _AFTER_INIT,
    "airflow-dag-processor": _AFTER_INIT,
    "airflow-worker": {**_AFTER_INIT, "airflow-apiserver": "service_healthy"},
    "airflow-triggerer": _AFTER_INIT,
    "airflow-init": _BASE,
    "airflow-cli": _BASE,
    "flower": _AFTER_INIT,
}
OFFICIAL_PROFILES = {"airflow-cli": ["debug"], "flower": ["flower"]}
COMPOSE_SPEC = Path(__file__).parent / "compose_spec" / "compose_spec.json"
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-cli",
    "flower",
}
# Run once, or by hand under a profile: no healthcheck or restart policy expected.
ONE_SHOT = {"airflow-init", "airflow-cli"}
# The official file's names for what Wharf names otherwise.
RENAMED = {"postgres": "airflow-db"}
# Wharf's own additions to the official graph: every Airflow service also waits for these.
ADDED = {"datasets-db"}
# Packages only the tests, linters and local runs need: never in the image's lock.
DEV_PACKAGES = {
    "pytest",
    "hypothesis",
    "ruff",
    "mypy",
    "import-linter",
    "types-pyyaml",
    "moto",
    "pgserver",
    "selenium",
    "aiosmtpd",
}
# ${NAME}, ${NAME:-default}, ${NAME:?message} and their one-dash/one-colon-less forms.
REFERENCE_RE = re.compile(
    r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<rest>[^}]*))?\}"
)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|TOKEN")


def interpolated(text: str) -> str:
    """``text`` with each ``${NAME...}`` replaced as compose would with ``NAME`` set to
    ``env-NAME`` (``$$`` is compose's literal ``$``)."""
    return REFERENCE_RE.sub(lambda m: f"env-{m['name']}", text).replace("$$", "$")


def compose() -> dict:
    return yaml.safe_load(interpolated((ROOT / "docker-compose.yaml").read_text()))


def graph(services: dict) -> dict[str, dict[str, str]]:
    """Each service -> {dependency: condition}, with the short (list) form's default."""
    edges: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        edges[name] = {d: c.get("condition", "service_started") for d, c in depends.items()}
    return edges


def lock(path: Path) -> dict[str, str]:
    """A uv lock file's ``name==version`` lines, names normalised (PEP 503)."""
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version.strip()
    return pins


def spec_problems(document: dict) -> list[str]:
    """Where ``document`` breaks the Compose Specification's JSON schema: ``path: message``."""
    import json

    import jsonschema

    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SPEC.read_text()))
    return sorted(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    )


def test_the_file_is_valid_by_the_compose_specifications_schema() -> None:
    assert spec_problems(compose()) == []


def test_the_schema_refuses_a_misspelt_key_and_a_wrong_type() -> None:
    broken = compose()
    broken["services"]["airflow-worker"]["healthcheck"]["retry"] = 5
    broken["services"]["redis"]["restarts"] = "always"
    broken["services"]["airflow-scheduler"]["ports"] = "8974"
    assert spec_problems(broken) == [
        "services.airflow-scheduler.ports: '8974' is not of type 'array'",
        "services.airflow-worker.healthcheck: 'retry' does not match any of the regexes: '^x-'",
        "services.redis: 'restarts' does not match any of the regexes: '^x-'",
    ]


def test_the_service_graph_is_the_official_ones_plus_the_datasets_database() -> None:
    ours = compose()["services"]
    theirs = {RENAMED.get(n, n): edges for n, edges in OFFICIAL_GRAPH.items()}
    assert set(ours) == set(theirs) | ADDED
    our_graph = graph(ours)
    for official_name, edges in OFFICIAL_GRAPH.items():
        name = RENAMED.get(official_name, official_name)
        expected = {RENAMED.get(d, d): c for d, c in edges.items()}
        if name in AIRFLOW_SERVICES:
            expected |= dict.fromkeys(ADDED, "service_healthy")
        assert our_graph[name] == expected, name
        assert ours[name].get("profiles") == OFFICIAL_PROFILES.get(name), name
    assert our_graph["datasets-db"] == {}


def test_celery_and_the_long_running_services_health_and_restart() -> None:
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        broker = urlsplit(services[name]["environment"]["AIRFLOW__CELERY__BROKER_URL"])
        assert (broker.scheme, broker.hostname) == ("redis", "redis")
        assert "airflow-logs:/opt/airflow/logs" in services[name]["volumes"], name
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
            continue
        assert service["restart"] == "always", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    # The worker's check pings the provider's app: the one the image can import.
    worker_check = services["airflow-worker"]["healthcheck"]["test"][1]
    assert "airflow.providers.celery.executors.celery_executor.app" in worker_check
    scheduler = services["airflow-scheduler"]
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_the_worker_starts_warm_and_notices_a_finished_task_within_a_second() -> None:
    services = compose()["services"]
    # The image's entrypoint runs a `python` command as given: `airflow celery worker` in a
    # process that has imported the tasks' modules, which its task processes inherit.
    worker = services["airflow-worker"]["command"]
    assert worker == ["python", "-m", "wharf.orchestration.preload", "celery", "worker"]
    assert (ROOT / "plugins" / "wharf" / "orchestration" / "preload.py").is_file()
    for name in AIRFLOW_SERVICES:
        assert services[name]["environment"]["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"


def test_airflow_services_share_the_project_and_connections() -> None:
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["build"] == "."
        mounts = {v.split(":")[1] for v in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        env = service["environment"]
        datasets = urlsplit(env["AIRFLOW_CONN_WHARF_DATASETS"])
        assert datasets.hostname == "datasets-db" and datasets.port == 5432
        admin = urlsplit(env["AIRFLOW_CONN_WHARF_DATASETS_ADMIN"])
        # Tasks log in as the loader, never as the server's superuser (issue #13).
        assert datasets.username == "wharf_loader" and admin.username == "wharf"
        assert admin.hostname == "datasets-db"
        metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        # Least privilege: Airflow's metadata and the datasets are other users and servers.
        assert metadata.username not in (datasets.username, admin.username)
        assert metadata.hostname != datasets.hostname
        # The example flights source is the file airflow-init writes into the shared state.
        source = env["AIRFLOW_CONN_FLIGHTS_SOURCE"]
        assert source == "sqlite:////opt/airflow/.wharf/sources/nycflights13.sqlite"
        assert "wharf-state:/opt/airflow/.wharf" in service["volumes"]
        for local in service["volumes"]:
            mounted = local.split(":")[0]
            if mounted.startswith("./"):
                assert (ROOT / mounted).is_dir(), f"{name} mounts missing {mounted}"


def test_the_init_service_migrates_airflow_then_upgrades_wharfs_tables_and_grants() -> None:
    services = compose()["services"]
    command = services["airflow-init"]["command"]
    assert command[:2] == ["bash", "-c"]
    assert command[2] == (
        "airflow db migrate"
        ' && airflow pools set "${WHARF_LOAD_POOL}" "${WHARF_LOAD_SLOTS}" "Wharf\'s load steps"'
        " && python -m wharf db upgrade && python -m wharf access apply"
        " && python -m wharf demo --source-only"
    )
    # The load steps' pool (settings.load_pool), made by the init before any task runs.
    env = services["airflow-scheduler"]["environment"]
    assert env["WHARF_LOAD_POOL"] == "wharf_loads"
    assert env["WHARF_LOAD_SLOTS"] == "env-WHARF_LOAD_SLOTS"  # ${WHARF_LOAD_SLOTS:-2}
    for name in AIRFLOW_SERVICES - {"airflow-init", "airflow-cli"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"] == {"condition": "service_completed_successfully"}


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    # Every reference to a secret's variable is required (:?), never given a default.
    for found in REFERENCE_RE.finditer(text):
        if SECRET_NAME.search(found["name"]):
            assert found["op"] == ":?", f"{found[0]} must be required, not defaulted"
    services = compose()["services"]
    for name, service in services.items():
        env = service.get("environment", {})
        for key, given in env.items():
            value = str(given)
            if SECRET_NAME.search(key):
                assert value.startswith("env-"), f"{name}: {key} is written in the file"
            if "://" in value:
                password = urlsplit(value).password
                assert password is None or password.startswith("env-"), f"{name}: {key}"


def test_the_image_is_built_from_the_runtime_lock_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile
    assert "-r /opt/wharf/requirements-runtime.txt" in dockerfile
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    assert not any(re.search(r"(?<![-\w])requirements\.txt", line) for line in instructions)
    runtime, full = lock(ROOT / "requirements-runtime.txt"), lock(ROOT / "requirements.txt")
    assert not DEV_PACKAGES & set(runtime), DEV_PACKAGES & set(runtime)
    assert set(full) >= DEV_PACKAGES
    # One version of each package in both locks: the runtime lock is the full one's subset.
    assert {name: full.get(name) for name in runtime} == runtime
    # The Celery provider 3.26.0 does not import with celery 5.7.0 (issue #16).
    assert "apache-airflow-providers-celery" in runtime
    assert tuple(int(p) for p in runtime["celery"].split(".")[:2]) < (5, 7)
