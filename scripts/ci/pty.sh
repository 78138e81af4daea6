#!/bin/sh
# CI setup for the shell/claude e2e tests (test/e2e/shell.test.ts, test/e2e/claude.test.ts):
# tmux drives the compiled binary in a real terminal; procps gives pgrep; vi is the full-screen
# program the shell test edits a file with; the claude test
# installs @anthropic-ai/claude-code from the npm registry inside a local sandbox, so Node.js
# and npm must be on the machine. Idempotent; runs as root on a fresh Debian machine
# (SETUP_CHECK=1: only say what is missing).
set -eu
# shellcheck source=scripts/ci/lib.sh
. "$(dirname "$0")/lib.sh"
need_commands tmux:tmux pgrep:procps node:nodejs npm:npm tar:tar vi:vim-tiny
