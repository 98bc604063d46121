# PostgreSQL 15 for the compose test, where no image registry is reachable: Debian's
# package on the local base image, with the official postgres image's contract
# (POSTGRES_USER/PASSWORD/DB, /docker-entrypoint-initdb.d/*.sql on an empty volume,
# data in /var/lib/postgresql/data), so docker/compose.yaml's db service runs unchanged.
ARG BASE_IMAGE=tuner-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15=15.* \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY docker/test/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# DL3066: Debian's postgres package assigns the uid; the name is what resolves.
# hadolint ignore=DL3066
USER postgres
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
