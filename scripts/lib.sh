#!/usr/bin/env bash
# Shared helpers for the scripts in this directory.
#
# Usage (from another script in scripts/):
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# This file is meant to be *sourced* by scripts that already run with
# `set -euo pipefail`; it enables the same options so that it is also safe
# when sourced from a fresh bash script.  Everything it prints goes to stderr.

set -euo pipefail

# Guard against double sourcing.
if [[ -n "${__SCRIPTS_LIB_SH:-}" ]]; then
  return 0
fi
__SCRIPTS_LIB_SH=1

# --------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------

# Short name of the running script, for log prefixes.
SCRIPT_NAME="$(basename "${0:-script}")"

# log MSG...   - always printed, to stderr.  Use for state changes and warnings.
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }

# debug MSG... - printed only when VERBOSE=1.
debug() {
  if [[ "${VERBOSE:-0}" == "1" ]]; then
    printf '%s: [debug] %s\n' "$SCRIPT_NAME" "$*" >&2
  fi
}

# warn MSG...
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }

# die MSG...   - print an error and exit 1.
die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------

# repo_root - absolute path of the repository (parent of scripts/).
# Honours $REPO_ROOT if set.  Does not require git.
repo_root() {
  if [[ -n "${REPO_ROOT:-}" ]]; then
    printf '%s\n' "$REPO_ROOT"
    return 0
  fi
  (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------

# have CMD - true if CMD is an executable in PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# is_root - true when running as uid 0.
is_root() { [[ "$(id -u)" -eq 0 ]]; }

# as_root CMD... - run CMD as root (directly if root, else via sudo -n).
as_root() {
  if is_root; then
    "$@"
  elif have sudo; then
    sudo -n "$@" || die "'sudo -n $*' failed (root privileges needed; passwordless sudo not available?)"
  else
    die "root privileges needed to run '$*' and sudo is not installed"
  fi
}

# run_quiet DESCRIPTION CMD... - run CMD with all output captured; on failure
# print the captured output (last 60 lines) and die.  Silent on success
# unless VERBOSE=1.
run_quiet() {
  local desc="$1"
  shift
  local out rc=0
  out="$(mktemp "${TMPDIR:-/tmp}/run_quiet.XXXXXX")"
  debug "running: $*"
  "$@" >"$out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    printf '%s: error: %s failed (exit %d): %s\n' "$SCRIPT_NAME" "$desc" "$rc" "$*" >&2
    printf '%s\n' '----- output (last 60 lines) -----' >&2
    tail -n 60 "$out" >&2 || true
    printf '%s\n' '----------------------------------' >&2
    rm -f "$out"
    exit "$rc"
  fi
  if [[ "${VERBOSE:-0}" == "1" ]]; then cat "$out" >&2; fi
  rm -f "$out"
}

# with_lock LOCKFILE - take an exclusive lock for the rest of the script
# (released automatically when the script exits).  No-op without flock.
with_lock() {
  local lockfile="$1"
  mkdir -p "$(dirname "$lockfile")"
  if have flock; then
    exec 9>"$lockfile"
    if ! flock -n 9; then
      log "waiting for lock $lockfile (another run in progress)..."
      flock -w "${LOCK_TIMEOUT:-900}" 9 || die "timed out waiting for lock $lockfile"
    fi
  fi
}

# --------------------------------------------------------------------------
# PostgreSQL helpers (used by ensure-postgres.sh / stop-private-postgres.sh)
# --------------------------------------------------------------------------

# _pg_versioned_bindirs - /usr/lib/postgresql/<ver>/bin dirs, newest first.
_pg_versioned_bindirs() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -d "$d" ]]; then printf '%s\n' "$d"; fi
  done | sort -rV
}

# pg_find_bin NAME - print the path of PostgreSQL program NAME: first from
# PATH, then from the newest /usr/lib/postgresql/*/bin.  Returns 1 if absent.
pg_find_bin() {
  local name="$1" p d
  if p="$(command -v "$name" 2>/dev/null)"; then
    printf '%s\n' "$p"
    return 0
  fi
  for d in $(_pg_versioned_bindirs); do
    if [[ -x "$d/$name" ]]; then
      printf '%s\n' "$d/$name"
      return 0
    fi
  done
  return 1
}

# pg_server_bindir - directory holding initdb + pg_ctl + postgres of the same
# installation (resolving symlinks such as /usr/local/bin/initdb ->
# /usr/lib/postgresql/15/bin/initdb).  Returns 1 if not found.
pg_server_bindir() {
  local p d
  if p="$(command -v initdb 2>/dev/null)"; then
    d="$(dirname "$(readlink -f "$p")")"
    if [[ -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  for d in $(_pg_versioned_bindirs); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}

# pg_private_vars - set the PRIVATE_PG_* variables describing the private
# cluster.  Overridable: PRIVATE_PG_DIR, PRIVATE_PG_PORT.
# shellcheck disable=SC2034 # the variables are used by the calling scripts
pg_private_vars() {
  local root
  root="$(repo_root)"
  PRIVATE_PG_DIR="${PRIVATE_PG_DIR:-$root/.local/pg}"
  PRIVATE_PG_PORT="${PRIVATE_PG_PORT:-55432}"
  PRIVATE_PG_DATA="$PRIVATE_PG_DIR/data"
  PRIVATE_PG_LOG="$PRIVATE_PG_DIR/log"
  PRIVATE_PG_SOCKDIR="$PRIVATE_PG_DIR/run"
  # Unix socket paths are limited to 107 bytes; fall back to /tmp if the
  # repository lives in a very deep directory.
  if (( ${#PRIVATE_PG_SOCKDIR} + 20 > 100 )); then
    PRIVATE_PG_SOCKDIR="${TMPDIR:-/tmp}/pg-sock-$(printf '%s' "$PRIVATE_PG_DIR" | cksum | cut -d' ' -f1)"
  fi
  PRIVATE_PG_URL="postgres://postgres@127.0.0.1:${PRIVATE_PG_PORT}/postgres"
}

# pg_run_as_owner DIR CMD... - run CMD as the owner of DIR (PostgreSQL server
# programs refuse to run as root).  If we are that user already, run directly.
pg_run_as_owner() {
  local dir="$1"
  shift
  local owner
  owner="$(stat -c %U "$dir")"
  # fd 9 is used by with_lock; never leak it into (daemon) children.
  if [[ "$owner" == "$(id -un)" ]]; then
    (cd "$dir" && "$@" 9>&-)
  elif is_root; then
    if have runuser; then
      (cd "$dir" && runuser -u "$owner" -- "$@" 9>&-)
    else
      local q
      q="$(printf '%q ' "$@")"
      (cd "$dir" && su -s /bin/sh "$owner" -c "$q" 9>&-)
    fi
  else
    die "$dir is owned by '$owner'; run this script as '$owner' or root"
  fi
}

# database_url_for ADMIN_URL USER PASSWORD: the admin URL's host and port, $STACK_DATABASE.
database_url_for() {
  local url="$1" user="$2" password="$3" rest hostport
  rest="${url#*://}"
  rest="${rest#*@}"
  hostport="${rest%%/*}"
  if [[ -n "$password" ]]; then
    printf 'postgres://%s:%s@%s/%s\n' "$user" "$password" "$hostport" "$STACK_DATABASE"
  else
    printf 'postgres://%s@%s/%s\n' "$user" "$hostport" "$STACK_DATABASE"
  fi
}

# admin_user URL, admin_password URL: the user and password of a postgres:// URL.
admin_user() {
  local rest="${1#*://}"
  rest="${rest%%@*}"
  printf '%s\n' "${rest%%:*}"
}

admin_password() {
  local rest="${1#*://}"
  [[ "$rest" == *@* ]] || return 0
  rest="${rest%%@*}"
  [[ "$rest" == *:* ]] && printf '%s\n' "${rest#*:}"
  return 0
}
