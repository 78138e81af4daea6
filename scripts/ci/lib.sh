# shellcheck shell=sh
# Sourced by every scripts/ci/*.sh. Each script declares what the tests need and installs what is
# missing, idempotently, saying what it does in one line per step ("setup: …" on stdout) and
# nothing when everything is there. With SETUP_CHECK=1 it installs nothing and prints one line per
# missing thing instead (scripts/test-setup.sh collects those lines).

# need_commands COMMAND:PACKAGE…: apt-get installs the packages whose command is not on PATH.
need_commands() {
  missing=""
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 && continue
    case " $missing " in *" ${pair#*:} "*) ;; *) missing="$missing ${pair#*:}" ;; esac
  done
  [ -n "$missing" ] || return 0
  if [ -n "${SETUP_CHECK:-}" ]; then
    for package in $missing; do echo "apt package $package"; done
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found; install these with your package manager:$missing" >&2
    exit 1
  fi
  echo "setup: installing$missing (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  quietly apt-get update -qq
  # shellcheck disable=SC2086
  quietly apt-get install -y -qq --no-install-recommends $missing
}

# quietly COMMAND…: runs it with its chatter (debconf, needrestart, npm notices) held back, and
# shows that output only when the command fails.
quietly() {
  out=$(mktemp)
  if "$@" >"$out" 2>&1; then
    rm -f "$out"
  else
    status=$?
    cat "$out" >&2
    rm -f "$out"
    echo "setup: failed ($status): $*" >&2
    exit "$status"
  fi
}

# system_path: PATH without node_modules/.bin directories (what a sandbox, and a user's shell, see).
system_path() {
  printf '%s' "$PATH" | tr ':' '\n' | grep -v node_modules | paste -sd: -
}
