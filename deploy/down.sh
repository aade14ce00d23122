#!/usr/bin/env bash
# Remove the control plane's containers, and its volumes unless --keep-volumes is given.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m deploy.controlplane down "$@"
