#!/bin/sh
# CI setup for the release tests (test/e2e/release.test.ts): zsh and fish to check the completion
# scripts, shellcheck for install.sh and the bash completion, curl for install.sh.
# Idempotent; runs as root on Debian.
set -eu
missing=""
for tool in zsh fish curl shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
