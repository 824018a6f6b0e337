#!/usr/bin/env bash
# The cluster head's tracking store (cluster.yaml runs this after `ray start --head`): PostgreSQL,
# the OS package's server, listening on 127.0.0.1 only, and the MLflow tracking server on it, with
# artifacts on the shared folder. Safe to rerun: it creates what is missing and restarts MLflow.
#
# Why PostgreSQL: tens of trials log metrics at once, and SQLite's file locking is not reliable on
# the NFS/EFS volume the nodes share. The database's files stay on the head's own disk.
#
# Settings (environment; defaults for the head of cluster.yaml):
#   SHRINK_PG_DATA          /var/lib/shrink/postgres   PostgreSQL's data folder (keep it off NFS)
#   SHRINK_PG_PORT          5432
#   SHRINK_MLFLOW_HOST      0.0.0.0                    reachable only from metadata.shrink.allowed_network
#   SHRINK_MLFLOW_PORT      5000                         (the security group or firewall enforces it)
#   SHRINK_MLFLOW_ARTIFACTS /shared/shrink/mlflow/artifacts
#   SHRINK_MLFLOW_ARGS      extra `mlflow server` options, e.g. "--app-name basic-auth"
#   PYTHON                  python                     the interpreter that has shrink[cluster]
set -euo pipefail

data=${SHRINK_PG_DATA:-/var/lib/shrink/postgres}
pg_port=${SHRINK_PG_PORT:-5432}
host=${SHRINK_MLFLOW_HOST:-0.0.0.0}
port=${SHRINK_MLFLOW_PORT:-5000}
artifacts=${SHRINK_MLFLOW_ARTIFACTS:-/shared/shrink/mlflow/artifacts}
python=${PYTHON:-python}
state=$(dirname "$data")  # beside the data: the password file, MLflow's log and PID
say() { echo "start-tracking: $*"; }

# PostgreSQL refuses to run as root: as root (a custom image), its server runs as the package's
# `postgres` user. Clients (psql, MLflow) connect over TCP with the password, as anyone.
if [ "$(id -u)" = 0 ]; then pg_user=postgres; else pg_user=$(id -un); fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

install_postgresql() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return
    say "installing PostgreSQL (the OS package)"
    # Without its default cluster: that one would start on 5432, the port of ours.
    sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
}

create_cluster() {
    # A fresh data folder owned by this user (PostgreSQL refuses root) and a generated password,
    # kept in a pgpass file that psycopg reads (PGPASSFILE): it never appears on a command line.
    mkdir -p "$state" 2>/dev/null || true
    [ -w "$state" ] || sudo install -d -o "$(id -u)" -g "$(id -g)" -m 755 "$state"
    [ -f "$data/PG_VERSION" ] && return
    say "creating the database cluster in $data"
    install -d -o "$pg_user" -m 700 "$data"
    local password
    password=$(mktemp)
    (umask 077 && echo "127.0.0.1:$pg_port:*:mlflow:$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        > "$state/pgpass")
    cut -d: -f5 "$state/pgpass" > "$password" && chown "$pg_user" "$password"
    as_pg "$bin/initdb" -D "$data" -U mlflow --auth=scram-sha-256 --pwfile="$password" -E UTF8 >/dev/null
    rm -f "$password"
}

start_postgresql() {
    as_pg "$bin/pg_ctl" status -D "$data" >/dev/null && return
    say "starting PostgreSQL on 127.0.0.1:$pg_port"
    as_pg "$bin/pg_ctl" start -w -D "$data" -l "$data/server.log" \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $data"
}

create_database() {
    local exists
    exists=$("$bin/psql" -h 127.0.0.1 -p "$pg_port" -U mlflow -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'mlflow'")
    [ "$exists" = 1 ] || "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U mlflow mlflow
}

restart_mlflow() {
    local previous
    previous=$(cat "$state/mlflow.pid" 2>/dev/null || true)
    if [ -n "$previous" ] && kill -- -"$previous" 2>/dev/null; then
        say "stopping the previous MLflow server"
        for _ in $(seq 60); do kill -0 -- -"$previous" 2>/dev/null || break; sleep 0.5; done
        kill -9 -- -"$previous" 2>/dev/null || true  # its port must be free for the new one
    fi
    mkdir -p "$artifacts"
    say "starting MLflow on $host:$port (runs in PostgreSQL, artifacts in $artifacts)"
    # One process group per server (setsid): the PID file ends it and its workers.
    # shellcheck disable=SC2086  # SHRINK_MLFLOW_ARGS is a list of options
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false nohup setsid "$python" -m mlflow server \
        --backend-store-uri "postgresql+psycopg://mlflow@127.0.0.1:$pg_port/mlflow" \
        --artifacts-destination "$artifacts" --host "$host" --port "$port" --workers 4 \
        ${SHRINK_MLFLOW_ARGS:-} > "$state/mlflow.log" 2>&1 &
    echo $! > "$state/mlflow.pid"
}

wait_healthy() {
    local url="http://127.0.0.1:$port/health"
    for _ in $(seq 180); do
        "$python" -c "import urllib.request; urllib.request.urlopen('$url', timeout=2)" 2>/dev/null && {
            say "MLflow answers at $url"; return; }
        kill -0 "$(cat "$state/mlflow.pid")" 2>/dev/null || break
        sleep 1
    done
    say "MLflow did not come up; its log, $state/mlflow.log, ends with:"
    tail -20 "$state/mlflow.log" >&2
    exit 1
}

export PGPASSFILE=$state/pgpass
install_postgresql
bin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
create_cluster
start_postgresql
create_database
restart_mlflow
wait_healthy
