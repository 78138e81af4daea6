#!/bin/sh
# Bun on the system PATH (not only in node_modules/.bin), so TypeScript runs inside local sandboxes,
# which see /usr read-only but not this checkout: `npm install -g bun@<package.json's version>`.
# Idempotent; runs as root (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
if PATH=$(system_path) command -v bun >/dev/null 2>&1; then exit 0; fi
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^ *"bun": *"\([^"]*\)".*/\1/p' "$root/package.json" | head -n 1)
if [ -n "${SETUP_CHECK:-}" ]; then
  echo "bun@$version on the system PATH (npm install -g)"
  exit 0
fi
echo "setup: installing bun@$version (npm install -g)"
quietly npm install -g --silent --no-audit --no-fund "bun@$version"
