#!/bin/sh
# CI setup for the release tests (test/e2e/release.test.ts): zsh and fish to check the completion
# scripts, shellcheck for install.sh and the bash completion, curl for install.sh, musl-tools
# for musl's loader on this glibc machine, as on Rust developers' (install.sh must still pick the
# glibc build), and the C cross compiler for the other Linux CPU's sandbox-start
# (scripts/build-binaries.ts's compileStartHelper).
# Idempotent; runs as root on Debian (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_commands zsh:zsh fish:fish curl:curl shellcheck:shellcheck musl-gcc:musl-tools
case $(uname -m) in
  x86_64) need_commands aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu aarch64-linux-gnu-gcc:libc6-dev-arm64-cross ;;
  aarch64) need_commands x86_64-linux-gnu-gcc:gcc-x86-64-linux-gnu x86_64-linux-gnu-gcc:libc6-dev-amd64-cross ;;
esac
