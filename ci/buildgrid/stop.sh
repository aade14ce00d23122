#!/usr/bin/env bash
# Stop a BuildGrid started by start.sh:  ci/buildgrid/stop.sh DATA_DIR
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 DATA_DIR" >&2; exit 2; }
PID_FILE="$1/bgd.pid"
[[ -f "$PID_FILE" ]] || { echo "stop.sh: no $PID_FILE" >&2; exit 1; }
PID="$(cat "$PID_FILE")"
if kill "$PID" 2>/dev/null; then
  # Wait for the port to be released before a caller reuses it.
  for _ in $(seq 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$PID" 2>/dev/null || true
fi
rm -f "$PID_FILE"
