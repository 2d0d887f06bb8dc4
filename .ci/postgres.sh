#!/usr/bin/env bash
# Start (or stop) a throw-away PostgreSQL server on loopback for the tests.
#   source .ci/postgres.sh start   -> exports SOFTGATE_TEST_POSTGRES=postgresql://...
#   bash .ci/postgres.sh stop
# Uses Debian's postgresql package; the cluster lives in a temp folder owned by the postgres user.
set -euo pipefail
PGPORT=${PGPORT:-55432}
PGDATA=${PGDATA:-/tmp/softgate-pg}

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] || return 1
  echo "$bin"
}

as_postgres() {
  # from /: the postgres user may not be allowed into the current (e.g. mktemp) folder
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

case "${1:-start}" in
  start)
    if ! BIN=$(pg_bin); then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
      BIN=$(pg_bin)
    fi
    if ! as_postgres "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
      rm -rf "$PGDATA"
      mkdir -p "$PGDATA" && chown postgres "$PGDATA" 2>/dev/null || true
      as_postgres "$BIN/initdb" -D "$PGDATA" -U postgres --auth=trust >/dev/null
      as_postgres "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k /tmp -c max_connections=200" start >/dev/null
      as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE USER softgate PASSWORD 'softgate-test-pw'" >/dev/null
      as_postgres "$BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE softgate_test OWNER softgate" >/dev/null
    fi
    export SOFTGATE_TEST_POSTGRES="postgresql://softgate:softgate-test-pw@127.0.0.1:$PGPORT/softgate_test"
    echo "PostgreSQL running on 127.0.0.1:$PGPORT"
    ;;
  stop)
    BIN=$(pg_bin) && as_postgres "$BIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGDATA"
    echo "PostgreSQL stopped"
    ;;
esac
