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
exec "${command[@]}"
