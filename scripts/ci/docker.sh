#!/bin/sh
# Installs Docker Engine from Debian's packages, starts dockerd when none answers, and builds the
# offline test images by importing root filesystems assembled from host binaries (what
# `docker import` does, through POST /images/create?fromSrc=-). Never pulls from a registry.
#   sandboxes-test/busybox  busybox-static as /bin/sh and coreutils; no python3, no node
#   sandboxes-test/user     the same, but commands run as the unprivileged user "sandbox" (1000)
#   sandboxes-test/node     the busybox image plus the host's node binary and the libraries it links
# Idempotent (an image that exists is kept; REBUILD=1 replaces them); runs as root.
# SETUP_CHECK=1: only say what is missing. SANDBOXES_SETUP_DOCKER_SOCKET: another socket (tests).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"

SOCKET=${SANDBOXES_SETUP_DOCKER_SOCKET:-/var/run/docker.sock}
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

ping_engine() {
  curl -fsS --max-time 2 --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
}

# docker.io: the engine; busybox-static: the test images; curl: talking to the engine here;
# openssl: the tests make certificates for a mutual-TLS DOCKER_HOST.
need_commands dockerd:docker.io busybox:busybox-static curl:curl openssl:openssl

if ! ping_engine; then
  if [ -n "${SETUP_CHECK:-}" ]; then
    echo "dockerd answering on $SOCKET (not running, or not open to this user)"
    exit 0
  fi
  echo "setup: starting dockerd (log in $LOG)"
  nohup dockerd -H "unix://$SOCKET" >"$LOG" 2>&1 &
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

api() { curl -fsS --unix-socket "$SOCKET" "$@"; }
have_image() { curl -fsS -o /dev/null --unix-socket "$SOCKET" "http://localhost/images/$1/json" 2>/dev/null; }

busybox_root() {
  root=$1
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root" "$root/proc" "$root/sys" "$root/dev" "$root/usr/bin" "$root/home/sandbox"
  chmod 1777 "$root/tmp"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
}

import_image() {
  name=$1 root=$2 changes=$3
  tar -C "$root" -c . | api -X POST -H 'Content-Type: application/x-tar' --data-binary @- \
    "http://localhost/images/create?fromSrc=-&repo=$name&tag=latest&changes=ENV%20PATH%3D%2Fusr%2Flocal%2Fbin%3A%2Fusr%2Fbin%3A%2Fbin$changes" >/dev/null
}

build() {
  name=$1
  if [ "${REBUILD:-0}" != 1 ] && have_image "$name:latest"; then
    return
  fi
  if [ -n "${SETUP_CHECK:-}" ]; then
    echo "test image $name (built from host binaries)"
    return
  fi
  echo "setup: building the test image $name from host binaries"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  busybox_root "$work"
  if [ "$name" = sandboxes-test/node ]; then
    node=$(command -v node || true)
    [ -n "$node" ] || { echo "node is not installed on this machine; cannot build $name" >&2; exit 1; }
    cp "$(readlink -f "$node")" "$work/usr/bin/node"
    for lib in $(ldd "$node" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
      mkdir -p "$work$(dirname "$lib")"
      cp -L "$lib" "$work$lib"
    done
  fi
  changes=""
  if [ "$name" = sandboxes-test/user ]; then
    chown 1000:1000 "$work/home/sandbox"
    changes="&changes=USER%20sandbox&changes=WORKDIR%20%2Fhome%2Fsandbox"
  fi
  import_image "$name" "$work" "$changes"
  rm -rf "$work"
  trap - EXIT
}

build sandboxes-test/busybox
build sandboxes-test/user
build sandboxes-test/node
