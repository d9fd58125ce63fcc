#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL server for the tests and benchmarks, from Debian's
# packages, listening on 127.0.0.1 only. Prints the database URL on `start`.
#   scripts/postgres.sh start   # installs the package if missing, initdb on first use
#   scripts/postgres.sh stop
set -euo pipefail
PGPORT=${ENTRAIDE_PG_PORT:-54329}
PGROOT=${ENTRAIDE_PG_DIR:-/tmp/entraide-pg}
DB=entraide_test

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ]; then
    echo "installing Debian's postgresql package" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$dir"
}

as_pg() {
  # PostgreSQL refuses to run as root; run its tools as the `postgres` user the package creates.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin
  bin=$(pg_bin)
  mkdir -p "$PGROOT"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGROOT"
  if [ ! -f "$PGROOT/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$PGROOT/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_pg "$bin/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w -t 60 start \
      -o "-p $PGPORT -k $PGROOT -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on -c shared_buffers=256MB" >/dev/null
  fi
  if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$DB"
  fi
  echo "postgresql://postgres@127.0.0.1:$PGPORT/$DB"
}

stop() {
  local bin
  bin=$(pg_bin)
  as_pg "$bin/pg_ctl" -D "$PGROOT/data" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
