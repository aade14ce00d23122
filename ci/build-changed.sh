#!/usr/bin/env bash
# Incremental CI build: package the targets changed since REV and everything that depends on them.
#
#   ci/build-changed.sh REV [PANTS_OPTION ...]      e.g.  ci/build-changed.sh origin/main --no-pantsd
#
# Pants maps changed files to targets (sources, BUILD files, the Debian lock), but some inputs
# belong to no target: the plugin under rules/, pants.toml and the ./pants bootstrap. A change
# there can change every image, so then everything is built; the process cache keeps that cheap
# when little really changed.  Set DRY_RUN=1 to print the Pants command instead of running it.
set -euo pipefail

usage() {
  echo "usage: $0 REV [PANTS_OPTION ...]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
REV="$1"
shift
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Inputs of every build that no target owns.
GLOBAL_INPUTS=(rules pants pants.toml)
NOT_INPUTS=(':(exclude,glob)**/__pycache__/**' ':(exclude,glob)**/*.pyc')

if ! git rev-parse --verify --quiet "$REV^{commit}" >/dev/null; then
  echo "build-changed: $REV is not a commit of this repository." >&2
  exit 2
fi

# Committed, staged and unstaged edits since REV, and new files not yet added.
changed_global_inputs() {
  {
    git diff --name-only "$REV" -- "${GLOBAL_INPUTS[@]}" "${NOT_INPUTS[@]}"
    git ls-files --others --exclude-standard -- "${GLOBAL_INPUTS[@]}" "${NOT_INPUTS[@]}"
  } | sort -u
}

changed="$(changed_global_inputs)"
if [[ -n "$changed" ]]; then
  echo "build-changed: files outside any target changed since $REV; building everything:" >&2
  sed 's/^/  /' <<<"$changed" >&2
  command=(./pants "$@" package ::)
else
  command=(./pants "$@" "--changed-since=$REV" --changed-dependents=transitive package)
fi

echo "build-changed: ${command[*]}" >&2
if [[ -n "${DRY_RUN:-}" ]]; then
  exit 0
fi
if [[ -z "${PANTS_REMOTE_STORE_ADDRESS:-}" ]]; then
  exec "${command[@]}"
fi

# Pants drops a remote cache lookup that times out and runs the step locally without a word;
# count them (--stats-log) and say so, so that a slow cache shows up in the job's log.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
"${command[0]}" --stats-log "${command[@]:1}" 2>&1 | tee "$log" || status=$?
timeouts="$(awk '/^ *remote_cache_request_timeouts: [0-9]+$/ {n = $2} END {print n + 0}' "$log")"
if (( timeouts > 0 )); then
  echo "build-changed: warning: $timeouts remote cache lookups timed out at $PANTS_REMOTE_STORE_ADDRESS;" \
    "those steps ran locally. Check the cache's health (docs/remote-cache.md, \"A slow cache\")." >&2
fi
exit "$status"
