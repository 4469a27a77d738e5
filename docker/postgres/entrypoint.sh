#!/bin/sh
# Start a throwaway PostgreSQL for tests.
#
# Every container start copies a pristine cluster into PGDATA (compose mounts PGDATA's parent as
# a tmpfs), so no run ever sees rows left by a previous one. Durability is switched off: a crash loses the
# database, which for a test database is the point.
set -eu

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set: network clients authenticate with it}"

# The names go into SQL unquoted-safe only if they are plain identifiers.
for name in "$POSTGRES_USER" "$POSTGRES_DB"; do
    case "$name" in
        "" | *[!A-Za-z0-9_]*)
            echo "postgres-entrypoint: '$name' is not a plain identifier (letters, digits, _)" >&2
            exit 64
            ;;
    esac
done

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # The cluster made at build time (see the Dockerfile), not a new initdb. tar, not `cp -a`:
    # its ~970 files take tar ~0.12 s of the container's CPU and `cp -a` ~0.5 s.
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    tar -C "$PGTEMPLATE" -cf - . | tar -C "$PGDATA" -xf -
    if [ ! -s "$PGDATA/PG_VERSION" ]; then  # sh has no pipefail: a failed read shows here
        echo "postgres-entrypoint: could not copy the cluster from $PGTEMPLATE to $PGDATA" >&2
        exit 1
    fi

    # Single-user mode: the role and the database exist before the server accepts any
    # connection, so the health check cannot pass early. The password goes in on stdin (never
    # in argv, where `ps` shows it), with single quotes doubled for the SQL literal.
    password="$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")"
    {
        if [ "$POSTGRES_USER" = postgres ]; then
            echo "ALTER ROLE postgres PASSWORD '$password'"
        else
            echo "CREATE ROLE $POSTGRES_USER SUPERUSER LOGIN PASSWORD '$password'"
        fi
        if [ "$POSTGRES_DB" != postgres ]; then
            echo "CREATE DATABASE $POSTGRES_DB OWNER $POSTGRES_USER"
        fi
    } | postgres --single -D "$PGDATA" -c log_min_messages=fatal postgres > /dev/null
fi

exec postgres -D "$PGDATA" "$@"
