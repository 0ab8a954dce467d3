#!/usr/bin/env bash
# The whole test suite: makes sure Postgres, Redis and NATS (JetStream) answer on
# their loopback ports, starting them where it can (Debian packages, or a running
# Docker engine), then runs formatting, lints and every test against both storage
# backends (embedded SQLite and Postgres) in one build.
#
# Settings (environment): TEST_DATABASE_URL (default postgres://root@127.0.0.1:5432/postgres),
# REDIS_PORT (6379), NATS_PORT (4222).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=5432
REDIS_PORT=${REDIS_PORT:-6379}
NATS_PORT=${NATS_PORT:-4222}
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://root@127.0.0.1:${PG_PORT}/postgres}

say() { printf '==> %s\n' "$*"; }
fail() { printf 'deploy/test.sh: %s\n' "$*" >&2; exit 1; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port name
  for _ in $(seq 1 60); do answers "$1" && return 0; sleep 0.5; done
  return 1
}

have_docker() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  say "installing $* from Debian packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! have_docker && can_apt; then
    apt_install postgresql || true
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
    # A fresh install knows no `root` role and trusts no TCP login: give the
    # invoking user a superuser role, reached over the local socket.
    if wait_for "$PG_PORT" && command -v psql >/dev/null 2>&1 &&
       ! psql "$TEST_DATABASE_URL" -Atc 'select 1' >/dev/null 2>&1; then
      su postgres -c "createuser -s $(id -un)" 2>/dev/null || true
      export TEST_DATABASE_URL="postgres://$(id -un)@localhost/postgres?host=/var/run/postgresql"
    fi
  elif have_docker; then
    docker run -d --rm --name anamnesis-test-postgres -p "127.0.0.1:${PG_PORT}:5432" \
      -e POSTGRES_USER=root -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16 >/dev/null
  fi
}

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1 && ! have_docker && can_apt; then
    apt_install redis-server || true
  fi
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /tmp/anamnesis-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /tmp/anamnesis-redis >/dev/null
  elif have_docker; then
    docker run -d --rm --name anamnesis-test-redis -p "127.0.0.1:${REDIS_PORT}:6379" redis:7 >/dev/null
  fi
}

start_nats() {
  if ! command -v nats-server >/dev/null 2>&1 && ! have_docker && can_apt; then
    apt_install nats-server || true
  fi
  if command -v nats-server >/dev/null 2>&1; then
    mkdir -p /tmp/anamnesis-nats
    nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd /tmp/anamnesis-nats \
      >/tmp/anamnesis-nats/server.log 2>&1 &
  elif have_docker; then
    docker run -d --rm --name anamnesis-test-nats -p "127.0.0.1:${NATS_PORT}:4222" nats:2.9 -js >/dev/null
  fi
}

ensure() { # name port start-function
  if answers "$2"; then say "$1 answers on 127.0.0.1:$2"; return; fi
  say "$1 does not answer on 127.0.0.1:$2; starting it"
  "$3" || true
  wait_for "$2" || fail "$1 is not reachable on 127.0.0.1:$2 and could not be started here
(no Debian package could be installed and no Docker engine is running).
Start $1 on that port, then run deploy/test.sh again."
  say "$1 answers on 127.0.0.1:$2"
}

ensure PostgreSQL "$PG_PORT" start_postgres
ensure Redis "$REDIS_PORT" start_redis
ensure "NATS (JetStream)" "$NATS_PORT" start_nats

# tests/tests/outage.rs stops a Postgres of its own mid-run: it needs initdb and
# pg_ctl (under /usr/lib/postgresql/*/bin, or in PG_BIN_DIR), and fails without them.
if [ -z "${PG_BIN_DIR:-}" ] && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && can_apt; then
  apt_install postgresql || true
fi

# Databases left behind by interrupted test runs.
if command -v psql >/dev/null 2>&1; then
  for db in $(psql "$TEST_DATABASE_URL" -Atc \
      "select datname from pg_database where datname like 'anamnesis_test_%'" 2>/dev/null); do
    psql "$TEST_DATABASE_URL" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  done
fi

# The OpenAPI document is checked by a real validator (a Python package).
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  say "installing openapi-spec-validator (PyPI)"
  python3 -m pip install --quiet openapi-spec-validator >/dev/null 2>&1 ||
    python3 -m pip install --quiet --break-system-packages openapi-spec-validator >/dev/null 2>&1 ||
    fail "python3 with openapi-spec-validator is needed (pip install openapi-spec-validator)"
fi

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "cargo build (the CLI tests run the anamnesis binary itself)"
cargo build -p anamnesis-api --locked
export ANAMNESIS_BIN="$PWD/target/debug/anamnesis"
say "cargo test (both backends: every storage and HTTP test runs on SQLite and on Postgres)"
cargo test --workspace --all-targets --locked --no-fail-fast
