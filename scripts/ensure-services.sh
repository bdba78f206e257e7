#!/usr/bin/env bash
# Make sure the services the tests and the demo need are up: PostgreSQL 15 with TimescaleDB
# preloaded on 127.0.0.1:5432 and Mosquitto on 127.0.0.1:1883. Idempotent and quick when they are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "service on port $1 did not come up" >&2
  return 1
}

if ! port_open 5432; then
  echo "[services] starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
  wait_port 5432
fi

if ! port_open 1883; then
  echo "[services] starting Mosquitto"
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 1883
fi

command -v mosquitto >/dev/null || { echo "mosquitto is not installed" >&2; exit 1; }
bash "$here/ensure-timescaledb.sh"
