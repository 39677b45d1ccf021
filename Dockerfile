# The image every Airflow service of docker-compose.yaml runs: the official Airflow 3.3.2 image with
# this package's pinned dependencies baked in (not _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls
# them on every container start). DAGs, plugins and include/ are mounted as volumes, so changing
# them needs no rebuild; changing requirements.in does.
FROM apache/airflow:3.3.2

COPY --chown=airflow:0 requirements.in /opt/airflow/self-learning-requirements.in
# Airflow itself stays pinned to the image's version so pip cannot move it.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/airflow/self-learning-requirements.in
