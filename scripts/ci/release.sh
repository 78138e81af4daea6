#!/bin/sh
# CI setup for the release tests (test/e2e/release.test.ts): zsh and fish to check the completion
# scripts, shellcheck for install.sh and the bash completion, curl for install.sh, and musl-tools
# for musl's loader on this glibc machine, as on Rust developers' (install.sh must still pick the
# glibc build).
# Idempotent; runs as root on Debian (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_commands zsh:zsh fish:fish curl:curl shellcheck:shellcheck musl-gcc:musl-tools
