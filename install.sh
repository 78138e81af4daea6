#!/bin/sh
# Installs the `sandboxes` standalone binary.
#
#   curl -fsSL https://github.com/sandboxes-cli/sandboxes/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- 0.2.0         pin a release (v0.2.0 works too)
#   curl -fsSL .../install.sh | sh -s -- --uninstall   remove it again
#
# Environment:
#   SANDBOXES_INSTALL        prefix; the binary goes into $SANDBOXES_INSTALL/bin (default: $HOME/.sandboxes)
#   SANDBOXES_DOWNLOAD_BASE  URL of the directory holding the binaries and SHA256SUMS
#                            (default: the GitHub release of REPO below: latest, or the pinned tag)
#   SANDBOXES_OS, SANDBOXES_ARCH, SANDBOXES_VARIANT
#                            override detection (linux|darwin|windows; x64|arm64; musl|baseline|musl-baseline|none)
#   SANDBOXES_NO_MODIFY_PATH=1  never edit shell startup files
#
# The whole script is one function called on the last line, so a truncated download runs nothing.

# The GitHub repository that publishes the release assets (owner/name). Placeholder until the
# project's public home is settled; mirrors set SANDBOXES_DOWNLOAD_BASE instead.
REPO="sandboxes-cli/sandboxes"

PATH_MARKER="# added by the sandboxes installer"

say() { printf '%s\n' "$*" >&2; }
fail() {
  printf 'install.sh: error: %s\n' "$*" >&2
  exit 1
}

detect_os() {
  raw=${SANDBOXES_OS:-$(uname -s)}
  case "$raw" in
    Linux | linux) echo linux ;;
    Darwin | darwin | macos) echo darwin ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT | windows) echo windows ;;
    *) fail "unsupported operating system: $raw (binaries exist for Linux, macOS and Windows; see https://github.com/$REPO/releases)" ;;
  esac
}

detect_arch() {
  os=$1
  raw=${SANDBOXES_ARCH:-$(uname -m)}
  case "$raw" in
    x86_64 | amd64 | x64) arch=x64 ;;
    aarch64 | arm64 | armv8*) arch=arm64 ;;
    *) fail "unsupported architecture: $raw (binaries exist for x64 and arm64 only)" ;;
  esac
  # An x64 shell under Rosetta 2 on Apple silicon: install the native binary instead.
  if [ -z "${SANDBOXES_ARCH:-}" ] && [ "$os" = darwin ] && [ "$arch" = x64 ] &&
    [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = 1 ]; then
    say "Rosetta 2 detected: installing the native arm64 binary"
    arch=arm64
  fi
  if [ "$os" = windows ] && [ "$arch" = arm64 ]; then
    fail "no Windows arm64 binary yet: rerun with SANDBOXES_ARCH=x64 to use the x64 one under emulation"
  fi
  echo "$arch"
}

# musl only where the system's own programs use it: Debian's and Ubuntu's musl package (pulled in
# by musl-tools, for Rust's musl target) puts musl's loader on a glibc system, where our musl
# build cannot run (it needs musl's libstdc++).
is_musl() {
  if [ -f /etc/alpine-release ]; then return 0; fi
  case "$(ldd --version 2>&1 | head -n 1)" in
    *musl*) return 0 ;;
    *GLIBC* | *"GNU libc"*) return 1 ;;
  esac
  for loader in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
    [ -e "$loader" ] && return 1
  done
  for loader in /lib/ld-musl-*.so.1 /usr/lib/ld-musl-*.so.1; do
    [ -e "$loader" ] && return 0
  done
  return 1
}

has_avx2() {
  if [ -r /proc/cpuinfo ]; then
    grep -qi avx2 /proc/cpuinfo
  else
    # Cannot tell: assume a CPU of the last decade.
    return 0
  fi
}

# Prints the asset suffix after "sandboxes-": linux-x64-musl, darwin-arm64, windows-x64.exe ...
detect_target() {
  os=$(detect_os) || exit 1
  arch=$(detect_arch "$os") || exit 1
  variant=""
  if [ -n "${SANDBOXES_VARIANT:-}" ]; then
    case "$SANDBOXES_VARIANT" in
      none) variant="" ;;
      musl | baseline | musl-baseline) variant="-$SANDBOXES_VARIANT" ;;
      *) fail "unknown SANDBOXES_VARIANT: $SANDBOXES_VARIANT (musl, baseline, musl-baseline or none)" ;;
    esac
  elif [ "$os" = linux ]; then
    if is_musl; then variant="-musl"; fi
    if [ "$arch" = x64 ] && ! has_avx2; then
      say "this CPU lacks AVX2: installing the baseline build"
      variant="$variant-baseline"
    fi
  fi
  case "$os-$arch$variant" in
    linux-x64 | linux-x64-baseline | linux-x64-musl | linux-x64-musl-baseline | linux-arm64 | linux-arm64-musl | darwin-x64 | darwin-arm64) echo "$os-$arch$variant" ;;
    windows-x64) echo "windows-x64.exe" ;;
    *) fail "no binary for $os-$arch$variant" ;;
  esac
}

download() {
  url=$1
  out=$2
  if command -v curl >/dev/null 2>&1; then
    curl --fail --silent --show-error --location --retry 3 --output "$out" "$url"
  elif command -v wget >/dev/null 2>&1; then
    wget --quiet --tries=3 --output-document="$out" "$url"
  else
    fail "need curl or wget to download $url"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d ' ' -f 1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d ' ' -f 1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | cut -d ' ' -f 1
  else
    fail "need sha256sum, shasum or openssl to verify the download"
  fi
}

rc_files() {
  case "$(basename "${SHELL:-sh}")" in
    zsh) echo "${ZDOTDIR:-$HOME}/.zshrc" ;;
    bash)
      echo "$HOME/.bashrc"
      [ "$(uname -s)" = Darwin ] && echo "$HOME/.bash_profile"
      ;;
    fish) echo "${XDG_CONFIG_HOME:-$HOME/.config}/fish/config.fish" ;;
    *) ;;
  esac
  return 0
}

# shellcheck disable=SC2016 # the rc file expands $PATH, not us
path_line() {
  case "$1" in
    *config.fish) printf 'fish_add_path "%s" %s\n' "$2" "$PATH_MARKER" ;;
    *) printf 'export PATH="%s:$PATH" %s\n' "$2" "$PATH_MARKER" ;;
  esac
}

advise_path() {
  bin_dir=$1
  case ":$PATH:" in
    *":$bin_dir:"*) return 0 ;;
  esac
  # Only when someone is watching, never under CI, and never if asked not to.
  if [ -t 1 ] && [ -z "${CI:-}" ] && [ -z "${SANDBOXES_NO_MODIFY_PATH:-}" ]; then
    edited=""
    for rc in $(rc_files); do
      if [ -f "$rc" ] && grep -qF "$PATH_MARKER" "$rc"; then
        edited="$edited $rc"
        continue
      fi
      mkdir -p "$(dirname "$rc")"
      # shellcheck disable=SC2094 # path_line only looks at the name
      path_line "$rc" "$bin_dir" >>"$rc"
      edited="$edited $rc"
    done
    if [ -n "$edited" ]; then
      say "Added $bin_dir to PATH in:$edited (open a new shell to use it)"
      return 0
    fi
  fi
  say "Add $bin_dir to your PATH:"
  say "  sh/bash/zsh:  export PATH=\"$bin_dir:\$PATH\""
  say "  fish:         fish_add_path \"$bin_dir\""
}

advise_bubblewrap() {
  if command -v bwrap >/dev/null 2>&1; then
    say "bubblewrap found ($(command -v bwrap)): the local provider will use it"
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then how="sudo apt-get install bubblewrap"
  elif command -v dnf >/dev/null 2>&1; then how="sudo dnf install bubblewrap"
  elif command -v pacman >/dev/null 2>&1; then how="sudo pacman -S bubblewrap"
  elif command -v zypper >/dev/null 2>&1; then how="sudo zypper install bubblewrap"
  elif command -v apk >/dev/null 2>&1; then how="sudo apk add bubblewrap"
  else how="install the 'bubblewrap' package with your package manager"
  fi
  say "bubblewrap not found: the local provider falls back to util-linux unshare; for the preferred isolation: $how"
}

uninstall() {
  bin_dir=$1
  removed=""
  for file in "$bin_dir/sandboxes" "$bin_dir/sandboxes.exe"; do
    if [ -e "$file" ]; then
      rm -f "$file"
      removed="$removed $file"
    fi
  done
  rmdir "$bin_dir" 2>/dev/null && rmdir "$(dirname "$bin_dir")" 2>/dev/null
  for rc in "${ZDOTDIR:-$HOME}/.zshrc" "$HOME/.bashrc" "$HOME/.bash_profile" "${XDG_CONFIG_HOME:-$HOME/.config}/fish/config.fish"; do
    if [ -f "$rc" ] && grep -qF "$PATH_MARKER" "$rc"; then
      # Rewrite in place (keeps the file's owner, mode and links).
      kept=$(grep -vF "$PATH_MARKER" "$rc" || :)
      if [ -n "$kept" ]; then printf '%s\n' "$kept" >"$rc"; else : >"$rc"; fi
      say "removed the PATH line from $rc"
    fi
  done
  if [ -z "$removed" ]; then
    say "sandboxes is not installed in $bin_dir: nothing to remove"
  else
    say "removed$removed"
  fi
  say "configuration and state are kept: ${XDG_CONFIG_HOME:-$HOME/.config}/sandboxes, ${XDG_STATE_HOME:-$HOME/.local/state}/sandboxes"
}

usage() {
  say "usage: install.sh [VERSION] | install.sh --uninstall"
  say "  VERSION pins a release (e.g. 0.2.0); default: the latest release"
}

install_sandboxes() {
  set -eu
  version=""
  mode=install
  for arg in "$@"; do
    case "$arg" in
      --uninstall) mode=uninstall ;;
      -h | --help) usage; return 0 ;;
      -*) usage; fail "unknown option: $arg" ;;
      *)
        [ -z "$version" ] || fail "more than one version given: $version and $arg"
        version=${arg#v}
        ;;
    esac
  done
  [ -n "${HOME:-}" ] || [ -n "${SANDBOXES_INSTALL:-}" ] || fail "neither HOME nor SANDBOXES_INSTALL is set"
  bin_dir="${SANDBOXES_INSTALL:-$HOME/.sandboxes}/bin"

  if [ "$mode" = uninstall ]; then
    uninstall "$bin_dir"
    return 0
  fi

  target=$(detect_target) || exit 1
  asset="sandboxes-$target"
  if [ -n "${SANDBOXES_DOWNLOAD_BASE:-}" ]; then
    base=${SANDBOXES_DOWNLOAD_BASE%/}
  elif [ -n "$version" ]; then
    base="https://github.com/$REPO/releases/download/v$version"
  else
    base="https://github.com/$REPO/releases/latest/download"
  fi

  tmp=$(mktemp -d 2>/dev/null || mktemp -d -t sandboxes) || fail "cannot create a temporary directory"
  trap 'rm -rf "$tmp"' EXIT
  trap 'rm -rf "$tmp"; exit 130' INT
  trap 'rm -rf "$tmp"; exit 143' TERM

  say "Downloading $asset from $base"
  download "$base/$asset" "$tmp/$asset" || fail "download failed: $base/$asset"
  download "$base/SHA256SUMS" "$tmp/SHA256SUMS" || fail "download failed: $base/SHA256SUMS"

  expected=$(awk -v name="$asset" '$2 == name || $2 == "*" name { print $1; exit }' "$tmp/SHA256SUMS")
  [ -n "$expected" ] || fail "SHA256SUMS has no entry for $asset: refusing to install"
  actual=$(sha256_of "$tmp/$asset")
  if [ "$actual" != "$expected" ]; then
    fail "checksum mismatch for $asset (expected $expected, got $actual): refusing to install; nothing was changed"
  fi

  exe=sandboxes
  [ "${target%.exe}" = "$target" ] || exe=sandboxes.exe
  prefix=$(dirname "$bin_dir")
  created=""
  [ -d "$prefix" ] || created="$prefix"
  [ -d "$bin_dir" ] || created="$bin_dir $created"
  mkdir -p "$bin_dir" || fail "cannot create $bin_dir"
  # Staged next to the destination so the final mv is an atomic rename on one filesystem.
  staged="$bin_dir/.new-$$-$exe"
  cp "$tmp/$asset" "$staged" || fail "cannot write to $bin_dir"
  # On failure leave no trace: the staged file, and the directories if this run made them.
  # shellcheck disable=SC2086
  trap 'rm -rf "$tmp" "$staged"; [ -z "$created" ] || rmdir $created 2>/dev/null || :' EXIT
  chmod 755 "$staged"

  installed_version=""
  if "$staged" --version >"$tmp/version" 2>/dev/null; then
    installed_version=$(cat "$tmp/version")
  elif [ -z "${SANDBOXES_OS:-}${SANDBOXES_ARCH:-}${SANDBOXES_VARIANT:-}" ]; then
    fail "the downloaded binary does not run on this machine ($asset): nothing was changed"
  fi
  if [ -n "$version" ] && [ -n "$installed_version" ] && [ "$installed_version" != "$version" ]; then
    fail "asked for $version but $base serves $installed_version: nothing was changed"
  fi
  mv -f "$staged" "$bin_dir/$exe" || fail "cannot move the binary into $bin_dir"

  say "Installed sandboxes${installed_version:+ $installed_version} to $bin_dir/$exe"
  advise_path "$bin_dir"
  case "$target" in linux-*) advise_bubblewrap ;; esac
  say "Shell completion: sandboxes completion bash|zsh|fish (see sandboxes completion --help)"
  say "Get started: sandboxes run -- echo hello"
}

install_sandboxes "$@"
