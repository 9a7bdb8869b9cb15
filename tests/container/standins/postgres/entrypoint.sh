#!/bin/sh
# The official image's contract, in short: POSTGRES_PASSWORD is required,
# POSTGRES_USER (default postgres) and POSTGRES_DB (default the user) are made
# on first start, the server runs as the postgres user in the foreground.
set -e
if [ "$1" != "postgres" ]; then
    exec "$@"
fi
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    chown postgres "$pwfile"
    as_postgres initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 \
        --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    if [ "$db" != "postgres" ]; then
        # a server for the set-up only, on a socket of its own: a healthcheck
        # (pg_isready on the usual socket) must not take it for the real one
        init=$(mktemp -d)
        chown postgres "$init"
        as_postgres pg_ctl -D "$PGDATA" -w start \
            -o "-c listen_addresses='' -c unix_socket_directories=$init" >/dev/null
        # the name as a psql variable, quoted by psql (:"db"): any name is safe
        printf 'CREATE DATABASE :"db";\n' | as_postgres psql -v ON_ERROR_STOP=1 \
            --host="$init" --username="$user" --dbname=postgres -v db="$db" >/dev/null
        as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        rmdir "$init"
    fi
fi
shift
exec setpriv --reuid=postgres --regid=postgres --init-groups postgres "$@"
