#!/usr/bin/env bash
# Deploy the control plane from the images in dist/ (run `./pants package ::` first).
# Options: see `python3 -m deploy.controlplane up --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m deploy.controlplane up "$@"
