#!/usr/bin/env bash
# The whole test suite, from a fresh clone: starts PostgreSQL and MariaDB when they are down,
# then runs rustfmt, clippy and every test (against the real databases).
#
#   bash scripts/test.sh
#
# TEST_POSTGRES_URL / TEST_MYSQL_URL point the tests at other servers (defaults:
# postgres://postgres@127.0.0.1:5432 and mysql://root@127.0.0.1:3306); TEST_MONGODB_URL at a
# MongoDB-protocol server and TEST_S3_ENDPOINT at an S3-compatible one (defaults: SecantusDB and
# moto, installed and started here).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

wait_for() { # wait_for NAME COMMAND...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "error: $name did not come up within 60 s" >&2
  return 1
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
mariadb_up() { mariadb-admin ping -h 127.0.0.1 -P 3306 -uroot --silent 2>/dev/null || mysqladmin ping -h 127.0.0.1 -P 3306 -uroot --silent; }

if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  if ! pg_up; then
    log "starting PostgreSQL"
    if ! command -v pg_ctlcluster >/dev/null; then
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for PostgreSQL pg_up
  fi
fi

if [ -z "${TEST_MYSQL_URL:-}" ]; then
  if ! mariadb_up; then
    log "starting MariaDB"
    if [ ! -x /usr/sbin/mariadbd ]; then
      apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
    fi
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for MariaDB mariadb_up
  fi
fi

# A real headless browser for the GraphiQL and console tests (Debian's chromium and its
# chromedriver for WebDriver; never a downloaded one).
browser_packages=()
if [ -z "${SUBJECT_GATEWAY_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  browser_packages+=(chromium)
fi
if [ -z "${SUBJECT_GATEWAY_CHROMEDRIVER:-}" ] && ! command -v chromedriver >/dev/null; then
  browser_packages+=(chromium-driver)
fi
if [ ${#browser_packages[@]} -gt 0 ]; then
  log "installing ${browser_packages[*]} (Debian)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser_packages[@]}" >/dev/null
fi

# Servers for the tests, from PyPI into a virtualenv kept under target/: SecantusDB (the MongoDB
# wire protocol) and moto (an S3-compatible server), each on a free port of 127.0.0.1 and stopped
# when this script ends.
venv=target/test-services-venv
pids=()
dirs=()
cleanup() {
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  for dir in "${dirs[@]:-}"; do [ -n "$dir" ] && rm -rf "$dir" || true; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)"; }
if [ -z "${TEST_MONGODB_URL:-}" ] || [ -z "${TEST_S3_ENDPOINT:-}" ]; then
  if [ ! -x "$venv/bin/secantusd-py" ] || [ ! -x "$venv/bin/moto_server" ]; then
    log "installing SecantusDB and moto into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check SecantusDB "moto[server]"
  fi
fi
if [ -z "${TEST_MONGODB_URL:-}" ]; then
  port=$(free_port)
  mongo_dir=$(mktemp -d)
  dirs+=("$mongo_dir")
  log "starting SecantusDB (MongoDB wire protocol) on 127.0.0.1:$port"
  "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" --storage-path "$mongo_dir/data" --log-level WARNING \
    >"$mongo_dir/log" 2>&1 &
  pids+=($!)
  wait_for SecantusDB port_open "$port"
  export TEST_MONGODB_URL="mongodb://127.0.0.1:$port"
fi
if [ -z "${TEST_S3_ENDPOINT:-}" ]; then
  port=$(free_port)
  log "starting moto (S3) on 127.0.0.1:$port"
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  pids+=($!)
  wait_for moto port_open "$port"
  export TEST_S3_ENDPOINT="http://127.0.0.1:$port"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "tests"
# The durability tests run the real binary (and SIGKILL it): build it first.
cargo build --bin subject-gateway
cargo nextest run --workspace --no-fail-fast
