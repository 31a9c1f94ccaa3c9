# Wharf's Airflow image: Airflow 3.3.2 plus the project's runtime lock (requirements-runtime.txt:
# no test runner, linter, moto or embedded PostgreSQL; those are in requirements.txt, the venv's).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements-runtime.txt /opt/wharf/requirements-runtime.txt
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --no-cache --python "$(command -v python)" -r /opt/wharf/requirements-runtime.txt
# The compose file's named volumes take their owner from these folders on first use: made
# here, as the image's airflow user, so tasks can write the lake and Wharf's state.
RUN mkdir -p /opt/airflow/lake /opt/airflow/.wharf
ENV PYTHONPATH=/opt/airflow/plugins
