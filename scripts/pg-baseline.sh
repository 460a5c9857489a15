#!/usr/bin/env bash
# PostgreSQL baseline for goatview benchmarks (bench/pg/README.md).
#
# A private PostgreSQL cluster holding the final last-writer-wins state of an
# event log in plain tables; bench/pg/server.py answers the ten aggregate
# endpoints from it with SQL computed at request time.
#
# Usage: scripts/pg-baseline.sh start|stop|status|load FILE...|serve|psql [ARGS]|venv
#
#   start   install PostgreSQL (Debian packages) if missing, initdb the cluster
#           if new, start it on 127.0.0.1:PORT, wait until ready, create the
#           database. Idempotent.
#   stop    stop the cluster (fast shutdown); `stop --wipe` also deletes it
#   status  print running / not running; exit 0 / 1
#   load    stream one or more goatview JSON Lines logs into the tables
#           (replacing what was loaded before); starts the cluster if needed
#   serve   run bench/pg/server.py in the foreground (HTTP on GOATVIEW_PG_HTTP_PORT)
#   psql    a psql shell on the database (extra arguments go to psql)
#   venv    create/refresh the Python venv (psycopg 3) and print its python
#
# Environment (all optional):
#   GOATVIEW_CACHE          cache root (venv in $GOATVIEW_CACHE/pg-venv)  (~/.cache/goatview)
#   GOATVIEW_PG_DIR         cluster dir (data, log, socket)               (/tmp/goatview-pg)
#   GOATVIEW_PG_PORT        TCP port on 127.0.0.1                         (55432)
#   GOATVIEW_PG_HTTP_PORT   port of bench/pg/server.py                    (18090)
#   GOATVIEW_PG_SHARED_BUFFERS  shared_buffers                            (2GB)
#   GOATVIEW_PG_WORK_MEM    work_mem                                      (64MB)
#   GOATVIEW_NOW            the current instant for server.py (RFC 3339)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
BENCH="$ROOT/bench/pg"

CACHE_ROOT="${GOATVIEW_CACHE:-$HOME/.cache/goatview}"
VENV="$CACHE_ROOT/pg-venv"
PGDIR="${GOATVIEW_PG_DIR:-/tmp/goatview-pg}"
PORT="${GOATVIEW_PG_PORT:-55432}"
HTTP_PORT="${GOATVIEW_PG_HTTP_PORT:-18090}"
SHARED_BUFFERS="${GOATVIEW_PG_SHARED_BUFFERS:-2GB}"
WORK_MEM="${GOATVIEW_PG_WORK_MEM:-64MB}"
DATA="$PGDIR/data"
LOG_FILE="$PGDIR/postgres.log"
DB="goatview"
HOST="127.0.0.1"
DSN="host=$HOST port=$PORT dbname=$DB user=postgres"

log() { printf 'pg-baseline.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
}

# The newest installed server's bin directory (empty when none).
pg_bindir() {
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
        echo "$d"
    fi
}

install_pg() {
    [[ -n "$(pg_bindir)" ]] && return 0
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and we are not root (apt-get install -y postgresql)"
    log "installing PostgreSQL from Debian's packages"
    # Do not let the package create and start its default cluster on 5432.
    mkdir -p /etc/postgresql-common
    if [[ ! -f /etc/postgresql-common/createcluster.conf ]] ||
        ! grep -q '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' >>/etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q postgresql >&2
    [[ -n "$(pg_bindir)" ]] || die "postgresql installed but no server binaries found"
}

as_pg() { runuser -u postgres -- "$@"; }

BIN=""
need_bin() {
    install_pg
    BIN="$(pg_bindir)"
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] || return 1
    local b
    b="$(pg_bindir)"
    [[ -n "$b" ]] || return 1
    as_pg "$b/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
    [[ -f "$DATA/PG_VERSION" ]] && return 0
    log "creating cluster in $DATA"
    mkdir -p "$PGDIR"
    chown postgres:postgres "$PGDIR"
    chmod 700 "$PGDIR"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 --lc-collate=C >/dev/null
    # Settings for a 2-core / 24 GiB machine; fsync stays on. wal_level=minimal
    # lets the loader's COPY into tables created in the same transaction skip WAL.
    cat >>"$DATA/postgresql.conf" <<EOF

# --- goatview PostgreSQL baseline (scripts/pg-baseline.sh) ---
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$PGDIR'
max_connections = 64
shared_buffers = $SHARED_BUFFERS
work_mem = $WORK_MEM
maintenance_work_mem = 1GB
effective_cache_size = 16GB
effective_io_concurrency = 64
random_page_cost = 1.1
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 2
max_parallel_maintenance_workers = 2
wal_level = minimal
max_wal_senders = 0
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_buffers = 64MB
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
EOF
}

cmd_start() {
    need_bin
    init_cluster
    if is_running; then
        log "already running on $HOST:$PORT"
    else
        log "starting PostgreSQL on $HOST:$PORT (log: $LOG_FILE)"
        touch "$LOG_FILE"
        chown postgres:postgres "$LOG_FILE"
        as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 120 start >/dev/null ||
            { tail -n 30 "$LOG_FILE" >&2; die "PostgreSQL did not start"; }
    fi
    local i
    for ((i = 0; i < 120; i++)); do
        if "$BIN/pg_isready" -q -h "$HOST" -p "$PORT"; then break; fi
        sleep 0.5
    done
    "$BIN/pg_isready" -q -h "$HOST" -p "$PORT" || die "PostgreSQL not ready on $HOST:$PORT"
    if ! "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null
    fi
    echo "$DSN"
}

cmd_stop() {
    local wipe=0
    [[ "${1:-}" == "--wipe" ]] && wipe=1
    if is_running; then
        log "stopping PostgreSQL"
        as_pg "$(pg_bindir)/pg_ctl" -D "$DATA" -m fast -w -t 120 stop >/dev/null
    else
        log "not running"
    fi
    if ((wipe)); then
        log "deleting $PGDIR"
        rm -rf "$PGDIR"
    fi
}

cmd_status() {
    if is_running; then
        echo "running on $HOST:$PORT ($DATA)"
    else
        echo "not running"
        return 1
    fi
}

# Creates the venv once; reinstalls only when the requirements change.
ensure_venv() {
    local req="$BENCH/requirements.txt" stamp="$VENV/.goatview-requirements"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV"
        mkdir -p "$CACHE_ROOT"
        python3 -m venv "$VENV"
    fi
    if ! cmp -s "$req" "$stamp" 2>/dev/null; then
        log "installing $(tr '\n' ' ' <"$req")into $VENV"
        "$VENV/bin/python" -m pip install -q -r "$req" >&2
        cp "$req" "$stamp"
    fi
}

cmd_load() {
    (($# >= 1)) || die "usage: load FILE..."
    local f
    for f in "$@"; do [[ -r "$f" ]] || die "cannot read $f"; done
    ensure_venv
    is_running || cmd_start >/dev/null
    "$VENV/bin/python" "$BENCH/load.py" --dsn "$DSN" "$@"
}

cmd_serve() {
    ensure_venv
    is_running || die "PostgreSQL is not running (scripts/pg-baseline.sh start)"
    exec "$VENV/bin/python" "$BENCH/server.py" --dsn "$DSN" --listen "$HOST:$HTTP_PORT" "$@"
}

cmd_psql() {
    need_bin
    exec "$BIN/psql" -h "$HOST" -p "$PORT" -U postgres -d "$DB" "$@"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        start) cmd_start ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        load) cmd_load "$@" ;;
        serve) cmd_serve "$@" ;;
        psql) cmd_psql "$@" ;;
        venv) ensure_venv && echo "$VENV/bin/python" ;;
        -h | --help | help) usage ;;
        *) usage; exit 2 ;;
    esac
}

main "$@"
