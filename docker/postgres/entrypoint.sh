#!/bin/sh
# Start a throwaway PostgreSQL for tests.
#
# A new cluster is created on every container start (compose mounts PGDATA's parent as a tmpfs),
# so no run ever sees rows left by a previous one. Durability is switched off: a crash loses the
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
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"

    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 --no-sync > /dev/null
    rm -f "$pwfile"

    cat >> "$PGDATA/postgresql.conf" <<CONF

# --- dockyard demo: a disposable test database ---
listen_addresses = '*'
fsync = off
synchronous_commit = off
full_page_writes = off
jit = off
CONF
    # Any address may connect over the network, always with a password.
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"

    if [ "$POSTGRES_DB" != postgres ]; then
        # Single-user mode: the database exists before the server accepts any connection,
        # so the health check cannot pass early.
        echo "CREATE DATABASE $POSTGRES_DB OWNER $POSTGRES_USER" \
            | postgres --single -D "$PGDATA" postgres > /dev/null
    fi
fi

exec postgres -D "$PGDATA" "$@"
