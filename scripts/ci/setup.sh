#!/bin/sh
# Everything the test suite needs on this machine: runs every scripts/ci/*.sh (each idempotent,
# one "setup: …" line per step, silent when there is nothing to do). Root, Debian.
# SETUP_CHECK=1: install nothing, print one line per missing thing.
set -eu
dir=$(dirname "$0")
for script in "$dir"/*.sh; do
  case ${script##*/} in lib.sh | setup.sh) continue ;; esac
  sh "$script"
done
