#!/bin/sh
# `npm test` runs this first: it installs what the suite needs (scripts/ci/setup.sh) as root, or
# through `sudo -n` when sudo needs no password, and prints nothing when everything is there.
# Without the rights to install, it lists what is missing, names the one command that installs
# it, and exits 1 before any test runs.
set -eu
cd "$(dirname "$0")/.."
missing=$(SETUP_CHECK=1 sh scripts/ci/setup.sh)
[ -n "$missing" ] || exit 0
if [ "$(id -u)" = 0 ]; then
  exec sh scripts/ci/setup.sh
fi
if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  exec sudo -n env "PATH=$PATH" sh scripts/ci/setup.sh
fi
{
  echo "npm test needs these on this machine, and installing them needs root:"
  printf '%s\n' "$missing" | sed 's/^/  - /'
  echo "Install them with: sudo sh scripts/ci/setup.sh   (then run npm test again)"
  echo "Tests that need none of them run without setup, e.g. bun test test/unit"
} >&2
exit 1
