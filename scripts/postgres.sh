#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (scripts/test uses it; so can you).
#
#   scripts/postgres.sh start DIR   initdb into DIR (empty or missing), start the server on
#                                   127.0.0.1 on a free port, create a database, and print its
#                                   URL on stdout: postgres://tokenwarden:PASSWORD@127.0.0.1:PORT/tokenwarden
#   scripts/postgres.sh stop DIR    stop the server by the pid in DIR/postmaster.pid (fast
#                                   shutdown, then SIGKILL after 30 s); DIR itself is left for
#                                   the caller to remove
#
# PostgreSQL comes from Debian's packages (`apt-get install postgresql`) when initdb/pg_ctl are
# missing; the binaries live in /usr/lib/postgresql/<version>/bin. The server refuses to run as
# root, so under root the cluster belongs to the `postgres` user (created by the package; a
# system user `tokenwarden-pg` is created if it does not exist) and DIR is chowned to it.
#
# The server listens on 127.0.0.1 only, its Unix socket lives inside DIR (mode 0700, so only the
# owner can use it), TCP logins need the random password printed in the URL (scram-sha-256), and
# fsync stays on: the tests exercise the durability settings real deployments use. Logs go to
# DIR/postgres.log. Everything except the URL goes to stderr.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR | stop DIR" >&2
  exit 2
}

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

# The directory holding initdb, pg_ctl and postgres: on PATH, or Debian's newest version.
pg_bindir() {
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
    echo "$dir"
  fi
}

ensure_installed() {
  local dir
  dir=$(pg_bindir)
  if [ -z "$dir" ]; then
    log "initdb/pg_ctl not found: installing Debian's postgresql package"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    dir=$(pg_bindir)
  fi
  if [ -z "$dir" ]; then
    log "PostgreSQL binaries still not found after installing"
    exit 1
  fi
  echo "$dir"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$owner" = "$(id -un)" ]; then
    "$@"
  else
    runuser -u "$owner" -- "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  local dir=$1 bindir port password url attempt
  bindir=$(ensure_installed)

  owner=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    if ! id -u "$owner" >/dev/null 2>&1; then
      owner=tokenwarden-pg
      id -u "$owner" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
    fi
  fi

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -n "$(ls -A "$dir")" ]; then
    log "$dir is not empty"
    exit 1
  fi
  if [ "$owner" != "$(id -un)" ]; then
    chown "$owner": "$dir"
  fi
  chmod 0700 "$dir"
  if ! as_owner test -w "$dir"; then
    log "$owner cannot reach $dir: every parent directory must be searchable by $owner (use mktemp -d)"
    exit 1
  fi

  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  local pwfile
  pwfile=$(mktemp)
  printf '%s\n' "$password" >"$pwfile"
  [ "$owner" = "$(id -un)" ] || chown "$owner": "$pwfile"
  # Locale C: byte-order collation and no dependency on installed locales.
  as_owner "$bindir/initdb" -D "$dir" -U tokenwarden --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C >"$dir.initdb.log" 2>&1 || {
    cat "$dir.initdb.log" >&2
    rm -f "$pwfile" "$dir.initdb.log"
    exit 1
  }
  rm -f "$pwfile" "$dir.initdb.log"

  # The free port can be taken between the probe and the bind: retry with another.
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    cat >"$dir/postgresql.auto.conf" <<EOF
# Written by scripts/postgres.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
EOF
    [ "$owner" = "$(id -un)" ] || chown "$owner": "$dir/postgresql.auto.conf"
    if as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/postgres.log" -w -t 60 start >&2; then
      break
    fi
    log "start attempt $attempt on port $port failed:"
    tail -n 5 "$dir/postgres.log" >&2 || true
    if [ "$attempt" -eq 5 ]; then
      exit 1
    fi
  done

  for _ in $(seq 1 100); do
    as_owner "$bindir/pg_isready" -q -h "$dir" -p "$port" && break
    sleep 0.1
  done
  as_owner "$bindir/createdb" -h "$dir" -p "$port" -U tokenwarden tokenwarden

  url="postgres://tokenwarden:$password@127.0.0.1:$port/tokenwarden"
  log "PostgreSQL $("$bindir/postgres" --version | sed 's/^postgres (PostgreSQL) \([^ ]*\).*/\1/') running in $dir on 127.0.0.1:$port (pid $(head -n 1 "$dir/postmaster.pid"))"
  echo "$url"
}

stop() {
  local dir=$1 pid
  if [ ! -f "$dir/postmaster.pid" ]; then
    log "no server running in $dir (no postmaster.pid)"
    return 0
  fi
  pid=$(head -n 1 "$dir/postmaster.pid")
  case "$pid" in
    '' | *[!0-9]*)
      log "unreadable pid in $dir/postmaster.pid"
      exit 1
      ;;
  esac
  if ! kill -0 "$pid" 2>/dev/null; then
    log "server pid $pid is not running"
    return 0
  fi
  # SIGINT: "fast" shutdown — roll back open transactions, checkpoint, exit.
  kill -INT "$pid"
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || {
      log "stopped pid $pid"
      return 0
    }
    sleep 0.1
  done
  log "pid $pid still running after 30 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

[ $# -eq 2 ] || usage
case "$1" in
  start) start "$2" ;;
  stop) stop "$2" ;;
  *) usage ;;
esac
