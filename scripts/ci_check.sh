#!/usr/bin/env bash
# Run CI exactly as CI will: on a fresh clone of the committed HEAD, not the working tree.
# Uncommitted files do not exist there, so this catches "works on my machine" before a push.
set -euo pipefail
repo="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
work="$(mktemp -d -t vault-ci-XXXXXX)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/repo"
echo "CI check of $(git -C "$repo" rev-parse --short HEAD) in $work/repo"
cd "$work/repo"
bash .ci/run
