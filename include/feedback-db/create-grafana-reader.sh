#!/bin/bash
# Runs once, when the feedback-db container initialises an empty data directory: a read-only role
# for Grafana that also sees the tables the package's migrations create later (as user feedback).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$FEEDBACK_DB_READER_PASSWORD" <<'SQL'
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password';
GRANT CONNECT ON DATABASE feedback TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO grafana_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE feedback IN SCHEMA public GRANT SELECT ON TABLES TO grafana_reader;
SQL
