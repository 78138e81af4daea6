#!/bin/sh
# CI setup for the egress proxy e2e test (test/e2e/egress-proxy.test.ts): the test builds a network
# namespace of its own (util-linux unshare/nsenter, iproute2's ip) with stand-in hosts served by
# python3's http.server, and drives curl, python, git and a TLS certificate from openssl through
# the proxy. go, cargo and pip are used when present (their tests skip otherwise).
# Idempotent; runs as root on a fresh Debian machine.
set -eu

missing=""
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
command -v nsenter >/dev/null 2>&1 || missing="$missing util-linux"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v git >/dev/null 2>&1 || missing="$missing git"

if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi

ip -V
