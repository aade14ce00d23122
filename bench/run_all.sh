#!/usr/bin/env bash
# Run every benchmark one after the other (never two at once: they would measure each other) and
# write each one's JSON record to bench/results/ and its table into docs/benchmarks.md.
#
#   bench/run_all.sh              # defaults: about 70 minutes on 2 cores
#   bench/run_all.sh --quick      # fewer repetitions, the Kolla-style chain instead of the whole set
#
# Needs: the images/ set and its lock, a warm ~/.cache/oci-pants/debs (build once with
# `./pants package ::`), buildah, mmdebstrap, umoci, gpgv, and network access to deb.debian.org.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[[ "${1:-}" == "--quick" ]] && quick=true
out=bench/results
doc=docs/benchmarks.md
mkdir -p "$out"

if $quick; then
  python3 bench/base_vs_mmdebstrap.py --reps 2 --json "$out/base_vs_mmdebstrap.json" --markdown "$doc"
  python3 bench/codec_limit.py --reps 2 --json "$out/codec_limit.json" --markdown "$doc"
  python3 bench/images_set.py --reps 1 --cold-debs 0 --json "$out/images_set.json" --markdown "$doc"
  python3 bench/kolla_peer.py --reps 2 --json "$out/kolla_peer.json" --markdown "$doc"
  python3 bench/scale.py --reps 2 --json "$out/scale.json" --markdown "$doc"
else
  python3 bench/base_vs_mmdebstrap.py --reps 3 --cold --json "$out/base_vs_mmdebstrap.json" --markdown "$doc"
  python3 bench/codec_limit.py --reps 3 --json "$out/codec_limit.json" --markdown "$doc"
  python3 bench/images_set.py --reps 2 --cold-debs 1 --json "$out/images_set.json" --markdown "$doc"
  python3 bench/kolla_peer.py --images all --reps 2 --json "$out/kolla_peer.json" --markdown "$doc"
  python3 bench/scale.py --reps 3 --json "$out/scale.json" --markdown "$doc"
fi
python3 bench/size_chart.py "$out/kolla_peer.json" --out docs/sizes-vs-kolla.svg
