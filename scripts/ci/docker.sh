#!/bin/sh
# Installs Docker Engine from Debian's packages, starts dockerd when none answers, and builds the
# offline test images. Idempotent; runs as root. Never pulls from a registry.
set -eu

SOCKET=/var/run/docker.sock
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

ping_engine() {
  curl -fsS --max-time 2 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
}

if ! command -v dockerd >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static curl >/dev/null
fi
if ! command -v busybox >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq busybox-static curl >/dev/null
fi

if ! ping_engine; then
  nohup dockerd >"$LOG" 2>&1 &
  i=0
  until ping_engine; do
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then
      echo "dockerd did not answer on $SOCKET within 60 s; last lines of $LOG:" >&2
      tail -n 30 "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
fi



exec "$(dirname "$0")/docker-images.sh"
