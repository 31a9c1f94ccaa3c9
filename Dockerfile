# Wharf's Airflow image: Airflow 3.3.2 plus the project's pinned lock.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root requirements.txt /opt/wharf/requirements.txt
RUN pip install --no-cache-dir uv==0.13.8 \
 && uv pip install --no-cache --python "$(command -v python)" -r /opt/wharf/requirements.txt
ENV PYTHONPATH=/opt/airflow/plugins
