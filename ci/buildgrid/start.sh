#!/usr/bin/env bash
# Start a cache-only BuildGrid (REAPI CAS + ActionCache) for Pants' remote cache.
#
#   ci/buildgrid/start.sh PORT [DATA_DIR]
#
# Keeps a Python 3.13 venv with buildgrid==0.9.1, starts `bgd server start` on 127.0.0.1:PORT in
# the background, waits until it answers a GetCapabilities call, then prints the Pants options
# that use it.  The blobs, log and pid file go to DATA_DIR (default: a new temporary directory);
# stop the server with `ci/buildgrid/stop.sh DATA_DIR`.
#
# Environment: BGD_INSTANCE (REAPI instance name, default "main"), BGD_HOST (default 127.0.0.1),
# BUILDGRID_PYTHON (a Python 3.13), BUILDGRID_VENV, BGD_START_TIMEOUT (seconds, default 60).
set -euo pipefail

BUILDGRID_VERSION=0.9.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/oci-pants"
VENV="${BUILDGRID_VENV:-$CACHE_DIR/buildgrid-$BUILDGRID_VERSION}"

usage() {
  echo "usage: $0 PORT [DATA_DIR]" >&2
  exit 2
}

find_python313() {
  local candidate
  for candidate in "${BUILDGRID_PYTHON:-}" python3.13 \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 /usr/bin/python3.13 /usr/local/bin/python3.13; do
    [[ -n "$candidate" ]] || continue
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 13))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "start.sh: BuildGrid $BUILDGRID_VERSION needs Python 3.13 or newer; set BUILDGRID_PYTHON=/path/to/python3.13." >&2
  return 1
}

ensure_venv() {
  [[ -f "$VENV/.complete" ]] && return 0
  local python
  python="$(find_python313)"
  echo "start.sh: creating $VENV with $python" >&2
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  # A machine-wide pip config (constraints files) must not leak into this venv.
  PIP_CONFIG_FILE=/dev/null "$VENV/bin/pip" install --quiet --disable-pip-version-check "buildgrid==$BUILDGRID_VERSION"
  touch "$VENV/.complete"
}

answers_capabilities() {
  "$VENV/bin/bgd" capabilities --remote "http://$BGD_ADDRESS" --instance-name "$BGD_INSTANCE" >/dev/null 2>&1
}

port_is_open() {
  (exec 3<>"/dev/tcp/${BGD_HOST}/$PORT") 2>/dev/null
}

[[ $# -ge 1 && $# -le 2 && "$1" =~ ^[0-9]+$ ]] || usage
PORT="$1"
DATA_DIR="${2:-$(mktemp -d -t buildgrid.XXXXXX)}"
mkdir -p "$DATA_DIR/cas"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"

export BGD_HOST="${BGD_HOST:-127.0.0.1}"
export BGD_ADDRESS="$BGD_HOST:$PORT"
export BGD_INSTANCE="${BGD_INSTANCE:-main}"
export BGD_DATA="$DATA_DIR"

if port_is_open; then
  echo "start.sh: $BGD_ADDRESS is already in use." >&2
  exit 1
fi

ensure_venv
"$VENV/bin/bgd" server lint "$HERE/cache-only.yml" >/dev/null

# setsid: the server outlives this script and the terminal that started it.
setsid "$VENV/bin/bgd" server start "$HERE/cache-only.yml" \
  >"$DATA_DIR/bgd.log" 2>&1 </dev/null &
SERVER_PID=$!
echo "$SERVER_PID" >"$DATA_DIR/bgd.pid"

deadline=$((SECONDS + ${BGD_START_TIMEOUT:-60}))
until port_is_open && answers_capabilities; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "start.sh: BuildGrid exited during start-up; its log ($DATA_DIR/bgd.log) ends with:" >&2
    tail -n 20 "$DATA_DIR/bgd.log" >&2
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    echo "start.sh: BuildGrid did not answer on $BGD_ADDRESS within ${BGD_START_TIMEOUT:-60}s; see $DATA_DIR/bgd.log" >&2
    kill "$SERVER_PID" 2>/dev/null || true
    exit 1
  fi
  sleep 0.5
done

cat <<EOF
BuildGrid $BUILDGRID_VERSION is ready on $BGD_ADDRESS (instance "$BGD_INSTANCE", pid $SERVER_PID, data $DATA_DIR).
Use it with:
  ./pants --remote-cache-read --remote-cache-write --remote-store-address=grpc://$BGD_ADDRESS --remote-instance-name=$BGD_INSTANCE ...
EOF
