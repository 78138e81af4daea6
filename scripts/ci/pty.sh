#!/bin/sh
# CI setup for the shell/claude e2e tests (test/e2e/shell.test.ts, test/e2e/claude.test.ts):
# tmux drives the compiled binary in a real terminal; procps gives pgrep; vi is the full-screen
# program the shell test edits a file with; the claude test
# installs @anthropic-ai/claude-code from the npm registry inside a local sandbox, so Node.js
# and npm must be on the machine. Idempotent; runs as root on a fresh Debian machine.
set -eu

missing=""
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v pgrep >/dev/null 2>&1 || missing="$missing procps"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
command -v tar >/dev/null 2>&1 || missing="$missing tar"
command -v vi >/dev/null 2>&1 || missing="$missing vim-tiny"

if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi

tmux -V
