#!/usr/bin/env bash
# Make sure TimescaleDB (Apache edition) is installed into PostgreSQL 15 and preloaded.
# Debian 12 does not package it, so it is built from Debian's trixie source package.
# Idempotent: does nothing when the extension is already loadable.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config
CONF_FILE=/etc/postgresql/${PG_MAJOR}/main/conf.d/timescaledb.conf
WORK=${TIMESCALEDB_BUILD_DIR:-/var/tmp/coldchain-timescaledb}

log() { printf '[timescaledb] %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

server_version() { psql -h 127.0.0.1 -U postgres -Atc 'show server_version' 2>/dev/null | cut -d' ' -f1; }

preloaded() {
  psql -h 127.0.0.1 -U postgres -Atc "show shared_preload_libraries" 2>/dev/null | grep -q timescaledb
}

installed() { [ -f "/usr/share/postgresql/${PG_MAJOR}/extension/timescaledb.control" ]; }

if installed && preloaded; then
  log "installed and preloaded"
  exit 0
fi

if ! installed; then
  log "building from Debian's trixie source package"
  export DEBIAN_FRONTEND=noninteractive
  # Server and headers of the same minor version: an extension built against newer headers
  # fails to load into an older server with an undefined symbol.
  as_root apt-get update -qq
  as_root apt-get install -y -qq "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" cmake dpkg-dev >/dev/null
  mkdir -p "$WORK"
  # A private source list: the system's own sources are never edited. The mirror is the one the
  # system already uses for bookworm.
  mirror=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$mirror" ]; then
    mirror=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  fi
  [ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$WORK/apt/trixie-src.list"
  apt_opts=(-o "Dir::Etc::SourceList=$WORK/apt/trixie-src.list" -o "Dir::Etc::SourceParts=/dev/null"
            -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache::Archives=$WORK/apt/archives"
            -o "APT::Sandbox::User=root")
  apt-get "${apt_opts[@]}" update -qq
  cd "$WORK"
  rm -rf src && mkdir src && cd src
  apt-get "${apt_opts[@]}" source --download-only timescaledb >/dev/null
  dpkg-source -x --no-check ./*.dsc tsdb >/dev/null
  cd tsdb
  cmake -S . -B build -DPG_CONFIG="$PG_CONFIG" -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF \
        -DTAP_CHECKS=OFF -DSEND_TELEMETRY_DEFAULT=OFF -DWARNINGS_AS_ERRORS=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)" >/dev/null
  as_root cmake --install build >/dev/null
  log "installed $(ls /usr/share/postgresql/${PG_MAJOR}/extension/timescaledb--*.sql | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | sort -V | tail -n1)"
fi

if ! preloaded; then
  as_root mkdir -p "$(dirname "$CONF_FILE")"
  printf "shared_preload_libraries = 'timescaledb'\ntimescaledb.telemetry_level = off\n" | as_root tee "$CONF_FILE" >/dev/null
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main restart
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && break
    sleep 1
  done
  preloaded || { echo "timescaledb is not preloaded after restart" >&2; exit 1; }
  log "preloaded (server $(server_version))"
fi
