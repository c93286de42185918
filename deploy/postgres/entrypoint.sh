#!/bin/sh
# Start PostgreSQL as the postgres user; on an empty data folder first make the cluster with
# POSTGRES_USER (default postgres) as its superuser, password from POSTGRES_PASSWORD_FILE (a
# mounted secret) or POSTGRES_PASSWORD, and POSTGRES_DB (default: the user's name). Local socket
# connections inside the container are trusted; every TCP connection needs the password
# (scram-sha-256). Started as root only to read the secret and own the data folder.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"

if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    password=$(cat "$POSTGRES_PASSWORD_FILE")
  else
    password=${POSTGRES_PASSWORD:-}
  fi
  if [ -z "$password" ]; then
    echo "css-postgres: no password: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  chown postgres "$pwfile"
  $as_postgres initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" |
      $as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "css-postgres: made the cluster in $PGDATA (superuser $user, database $db)"
fi
exec $as_postgres postgres -D "$PGDATA" -c listen_addresses='*' "$@"
