#!/usr/bin/env bash
# Make the working tree small enough to upload to a training machine with an upload limit (64 MiB here),
# then put it back. `models/` alone is over the limit and no training command needs it (resume weights
# travel in an ignored folder, e.g. .gpu/), so it is untracked and ignored for the call, not moved:
# everyone working in this checkout keeps reading models/ as usual.
#
#   scripts/device_tree.sh hide      # before the upload: models/ untracked + ignored (files stay on disk)
#   scripts/device_tree.sh restore   # after it: the index and ignore list as before
#   scripts/device_tree.sh size      # MiB that would travel (tracked + untracked-not-ignored files)
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
case "${1:-size}" in
  hide)
    if ! git diff --cached --quiet -- models; then echo "models/ has staged changes: commit them first" >&2; exit 1; fi
    git rm -r -q --cached models
    grep -qx '/models/' "$exclude" || echo '/models/' >> "$exclude"
    ;;
  restore)
    sed -i '\#^/models/$#d' "$exclude"
    git reset -q -- models
    ;;
  size) ;;
  *) echo "usage: $0 hide|restore|size" >&2; exit 2 ;;
esac
git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
  | awk '{s += $1} END {printf "%.1f MiB would travel\n", s / 1048576}'
