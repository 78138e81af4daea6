#!/bin/sh
# CI setup for the egress proxy e2e test (test/e2e/egress-proxy.test.ts): the test builds a network
# namespace of its own (util-linux unshare/nsenter, iproute2's ip) with stand-in hosts served by
# python3's http.server, and drives curl, python, git and a TLS certificate from openssl through
# the proxy. go, cargo and pip are used when present (their tests skip otherwise).
# Idempotent; runs as root on a fresh Debian machine (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_commands unshare:util-linux nsenter:util-linux ip:iproute2 python3:python3 curl:curl \
  openssl:openssl git:git
