#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests: `up [DIR]` starts one on a free loopback port and prints
# `export FILESYNC_TEST_POSTGRES=postgres://filesync@127.0.0.1:PORT/postgres` and
# `export FILESYNC_TEST_POSTGRES_DIR=DIR` (eval them); `down [DIR]` stops it by its data folder and removes it.
# Authentication: trust on loopback, except the role `filesync_pw`, which needs its password (scram), so tests
# can check the password route. For tests only: never a cluster anyone else can reach.
set -euo pipefail

# The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/NN/bin (newest).
pg_bindir() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
    echo "postgres.sh: initdb not found (install Debian's postgresql package)" >&2
    exit 1
  fi
  echo "$dir"
}

# Runs a command as the postgres user when we are root (initdb refuses root); as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  if command -v node >/dev/null 2>&1; then
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
  else
    deno eval 'const l=Deno.listen({hostname:"127.0.0.1",port:0});console.log(l.addr.port);l.close()'
  fi
}

up() {
  local dir=${1:-$(mktemp -d /tmp/filesync-pg.XXXXXX)}
  local bin port
  bin=$(pg_bindir)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/db" -A trust -U filesync --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # The password route: one role that must give its password, before the trust lines.
  { echo "host all filesync_pw 127.0.0.1/32 scram-sha-256"; cat "$dir/db/pg_hba.conf"; } >"$dir/hba.tmp"
  as_pg cp "$dir/hba.tmp" "$dir/db/pg_hba.conf"
  rm -f "$dir/hba.tmp"
  port=$(free_port)
  as_pg "$bin/pg_ctl" -D "$dir/db" -l "$dir/server.log" -w -t 30 \
    -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "export FILESYNC_TEST_POSTGRES=postgres://filesync@127.0.0.1:$port/postgres"
  echo "export FILESYNC_TEST_POSTGRES_DIR=$dir"
}

down() {
  local dir=${1:-${FILESYNC_TEST_POSTGRES_DIR:-}}
  if [ -z "$dir" ] || [ ! -d "$dir/db" ]; then
    echo "postgres.sh: no cluster at \"$dir\"" >&2
    exit 1
  fi
  as_pg "$(pg_bindir)/pg_ctl" -D "$dir/db" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  *) echo "usage: tests/services/postgres.sh up [DIR] | down [DIR]" >&2; exit 2 ;;
esac
