#!/bin/sh
# The tools the tests use on this machine, and the runtimes they run inside local sandboxes:
#   bubblewrap   the local provider's preferred isolation (util-linux's unshare, the fallback, too)
#   procps tar   pgrep for the signal tests; tar for directory transfers
#   iproute2     ip, for network namespaces the tests build
#   python3 gcc g++ golang-go rustc default-jdk-headless ruby php-cli perl lua5.4
#                what test/e2e/languages.test.ts runs inside sandboxes (Bun: scripts/ci/bun.sh)
# Idempotent; runs as root on Debian (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_commands bwrap:bubblewrap unshare:util-linux tar:tar pgrep:procps ip:iproute2 \
  python3:python3 gcc:gcc g++:g++ go:golang-go rustc:rustc java:default-jdk-headless \
  ruby:ruby php:php-cli perl:perl lua5.4:lua5.4
