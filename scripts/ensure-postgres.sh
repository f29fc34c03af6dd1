#!/usr/bin/env bash
# Make sure a PostgreSQL server with a superuser we can reach is available,
# and print an admin connection URL for it as the last (only) line on stdout.
#
#   ADMIN_URL="$(scripts/ensure-postgres.sh)"
#
# Resolution order:
#   a. $ADMIN_DATABASE_URL, if set and `select 1` works;
#   b. postgres://postgres@127.0.0.1:5432/postgres (trust auth), if it works;
#   c. a stopped system cluster (pg_lsclusters), started with pg_ctlcluster,
#      then re-probed on its port;
#   d. a private cluster in $REPO/.local/pg on port 55432, created (and the
#      PostgreSQL server package installed via apt-get) if necessary.
#
# Environment:
#   ADMIN_DATABASE_URL   URL to try first.
#   FORCE_PRIVATE_PG=1   skip a-c and always use the private cluster.
#   PRIVATE_PG_PORT      port of the private cluster (default 55432).
#   PRIVATE_PG_DIR       location of the private cluster (default $REPO/.local/pg).
#   PRIVATE_PG_USER      OS user owning the private cluster when run as root
#                        (default: postgres; created if missing).
#   PG_READY_TIMEOUT     seconds to wait for a server to accept connections (30).
#   VERBOSE=1            more diagnostics on stderr.
#
# Everything except the URL goes to stderr.  Stop the private cluster with
# scripts/stop-private-postgres.sh.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

READY_TIMEOUT="${PG_READY_TIMEOUT:-30}"
DEFAULT_URL="postgres://postgres@127.0.0.1:5432/postgres"

PSQL=""
PG_ISREADY=""

find_client() {
  PSQL="$(pg_find_bin psql || true)"
  PG_ISREADY="$(pg_find_bin pg_isready || true)"
}

# probe URL [require_superuser] - 0 if we can connect (and, when asked, the
# role is a superuser).
probe() {
  local url="$1" need_super="${2:-0}" out
  [[ -n "$PSQL" ]] || return 1
  if ! out="$(PGCONNECT_TIMEOUT=3 "$PSQL" -X -w -q -tA "$url" -c 'show is_superuser' 2>&1)"; then
    debug "probe $url failed: $out"
    return 1
  fi
  if [[ "$need_super" == "1" && "$out" != "on" ]]; then
    debug "probe $url: connected but not a superuser"
    return 1
  fi
  return 0
}

# port_in_use PORT - something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_ready HOST PORT - wait until the server accepts connections.
wait_ready() {
  local host="$1" port="$2" deadline=$((SECONDS + READY_TIMEOUT)) rc
  while :; do
    if [[ -n "$PG_ISREADY" ]]; then
      rc=0
      "$PG_ISREADY" -q -h "$host" -p "$port" -t 2 || rc=$?
      [[ $rc -eq 0 ]] && return 0
    elif probe "postgres://postgres@$host:$port/postgres"; then
      return 0
    fi
    if (( SECONDS >= deadline )); then
      return 1
    fi
    sleep 0.5
  done
}

emit() {
  printf '%s\n' "$1"
  exit 0
}

# --------------------------------------------------------------------------
# a/b/c: existing servers
# --------------------------------------------------------------------------

try_admin_url() {
  [[ -n "${ADMIN_DATABASE_URL:-}" ]] || return 1
  if [[ -z "$PSQL" ]]; then
    warn "ADMIN_DATABASE_URL is set but psql is not installed; cannot verify it"
    return 1
  fi
  if probe "$ADMIN_DATABASE_URL"; then
    return 0
  fi
  warn "ADMIN_DATABASE_URL is set but 'select 1' fails against it; trying other options"
  return 1
}

try_system_clusters() {
  have pg_lsclusters || return 1
  local ver name port status _rest url
  local -a online=() down=()
  while read -r ver name port status _rest; do
    [[ "$port" =~ ^[0-9]+$ ]] || continue
    case "$status" in
      online*) online+=("$port") ;;
      down*) down+=("$ver $name $port") ;;
    esac
  done < <(pg_lsclusters --no-header 2>/dev/null || true)

  # Running clusters on a non-default port.
  for port in "${online[@]+"${online[@]}"}"; do
    url="postgres://postgres@127.0.0.1:$port/postgres"
    [[ "$url" == "$DEFAULT_URL" ]] && continue
    if probe "$url" 1; then
      printf '%s\n' "$url"
      return 0
    fi
    debug "system cluster on port $port is not usable as postgres over TCP without password"
  done

  # Clusters that are merely stopped: start them one at a time.
  local entry
  for entry in "${down[@]+"${down[@]}"}"; do
    read -r ver name port <<<"$entry"
    if ! is_root && ! { have sudo && sudo -n true 2>/dev/null; }; then
      debug "cluster $ver/$name is down but we cannot start it (not root, no sudo)"
      continue
    fi
    log "starting stopped system cluster $ver/$name (port $port)"
    if ! as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 2>&1; then
      warn "could not start system cluster $ver/$name"
      continue
    fi
    wait_ready 127.0.0.1 "$port" || true
    url="postgres://postgres@127.0.0.1:$port/postgres"
    if probe "$url" 1; then
      printf '%s\n' "$url"
      return 0
    fi
    warn "started system cluster $ver/$name, but $url does not work without a password (pg_hba.conf); leaving it running"
  done
  return 1
}

# --------------------------------------------------------------------------
# d: private cluster
# --------------------------------------------------------------------------

install_server() {
  have apt-get || die "PostgreSQL server binaries (initdb/pg_ctl) not found and apt-get is unavailable; install PostgreSQL or set ADMIN_DATABASE_URL"
  log "PostgreSQL server binaries not found; installing the 'postgresql' package with apt-get (this takes a while)"
  run_quiet "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  run_quiet "apt-get install postgresql" as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends postgresql
}

ensure_private_user() {
  local user="$1"
  if ! id -u "$user" >/dev/null 2>&1; then
    log "creating system user '$user' to own the private PostgreSQL cluster"
    if have useradd; then
      useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$user" \
        || die "could not create user '$user'"
    elif have adduser; then
      adduser --system --group --no-create-home --disabled-login "$user" >&2 \
        || die "could not create user '$user'"
    else
      die "initdb cannot run as root and no user '$user' exists (no useradd/adduser to create one)"
    fi
  fi
}

pg_major_of_bindir() {
  "$1/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/' | head -n1
}

write_private_conf() {
  local bindir="$1" conf="$PRIVATE_PG_DATA/private.conf" tmp libs="" sharedir pkglibdir major
  if [[ "${PRIVATE_PG_STAT_STATEMENTS:-1}" == "1" ]]; then
    major="$(pg_major_of_bindir "$bindir")"
    if [[ -x "$bindir/pg_config" ]]; then
      sharedir="$("$bindir/pg_config" --sharedir)"
      pkglibdir="$("$bindir/pg_config" --pkglibdir)"
    else
      sharedir="/usr/share/postgresql/$major"
      pkglibdir="/usr/lib/postgresql/$major/lib"
    fi
    if [[ -f "$sharedir/extension/pg_stat_statements.control" && -f "$pkglibdir/pg_stat_statements.so" ]]; then
      libs="pg_stat_statements"
    fi
  fi
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Generated by scripts/ensure-postgres.sh - edits will be overwritten.
listen_addresses = '127.0.0.1'
port = $PRIVATE_PG_PORT
unix_socket_directories = '$PRIVATE_PG_SOCKDIR'
shared_preload_libraries = '$libs'
EOF
  if [[ -f "$conf" ]] && cmp -s "$tmp" "$conf"; then
    rm -f "$tmp"
    return 1 # unchanged
  fi
  cat "$tmp" >"$conf"
  rm -f "$tmp"
  chown --reference="$PRIVATE_PG_DATA" "$conf" 2>/dev/null || true
  if ! grep -q "^include_if_exists 'private.conf'" "$PRIVATE_PG_DATA/postgresql.conf"; then
    printf "\ninclude_if_exists 'private.conf'\n" >>"$PRIVATE_PG_DATA/postgresql.conf"
  fi
  return 0 # changed
}

private_running() {
  [[ -f "$PRIVATE_PG_DATA/PG_VERSION" ]] || return 1
  pg_run_as_owner "$PRIVATE_PG_DATA" "$1/pg_ctl" -D "$PRIVATE_PG_DATA" status >/dev/null 2>&1
}

ensure_private() {
  pg_private_vars

  local bindir
  if ! bindir="$(pg_server_bindir)"; then
    install_server
    bindir="$(pg_server_bindir)" || die "PostgreSQL server binaries still not found after installing the package"
  fi
  debug "using PostgreSQL server binaries in $bindir"
  [[ -n "$PSQL" ]] || find_client
  [[ -n "$PSQL" ]] || PSQL="$bindir/psql"

  mkdir -p "$(dirname "$PRIVATE_PG_DIR")"
  with_lock "$PRIVATE_PG_DIR.lock"

  # Who owns the cluster?  initdb/postgres refuse to run as root.
  local owner
  if is_root; then
    owner="${PRIVATE_PG_USER:-postgres}"
    ensure_private_user "$owner"
  else
    owner="$(id -un)"
  fi

  mkdir -p "$PRIVATE_PG_DIR" "$PRIVATE_PG_SOCKDIR"
  if is_root && [[ "$(stat -c %U "$PRIVATE_PG_DIR")" != "$owner" || "$(stat -c %U "$PRIVATE_PG_SOCKDIR")" != "$owner" ]]; then
    chown -R "$owner": "$PRIVATE_PG_DIR" "$PRIVATE_PG_SOCKDIR"
  fi
  chmod 700 "$PRIVATE_PG_DIR"
  if is_root && ! runuser -u "$owner" -- test -w "$PRIVATE_PG_DIR" 2>/dev/null; then
    die "user '$owner' cannot write to $PRIVATE_PG_DIR (is a parent directory not traversable by other users?). Set PRIVATE_PG_DIR to a path such as /var/tmp/pg-private"
  fi

  # initdb if needed
  local major
  major="$(pg_major_of_bindir "$bindir")"
  if [[ -f "$PRIVATE_PG_DATA/PG_VERSION" ]]; then
    local have_major
    have_major="$(cat "$PRIVATE_PG_DATA/PG_VERSION")"
    if [[ "$have_major" != "$major" ]]; then
      die "private cluster $PRIVATE_PG_DATA was created by PostgreSQL $have_major but the server binaries are version $major; remove it with: scripts/stop-private-postgres.sh --remove"
    fi
  else
    if [[ -e "$PRIVATE_PG_DATA" ]]; then
      warn "removing incomplete data directory $PRIVATE_PG_DATA"
      rm -rf "$PRIVATE_PG_DATA"
    fi
    log "initialising private PostgreSQL $major cluster in $PRIVATE_PG_DATA"
    run_quiet "initdb" pg_run_as_owner "$PRIVATE_PG_DIR" "$bindir/initdb" \
      -D "$PRIVATE_PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale --no-sync
  fi

  local conf_changed=0
  if write_private_conf "$bindir"; then conf_changed=1; fi

  if private_running "$bindir"; then
    if [[ $conf_changed -eq 1 ]]; then
      log "configuration changed; restarting private PostgreSQL on port $PRIVATE_PG_PORT"
      run_quiet "pg_ctl restart" pg_run_as_owner "$PRIVATE_PG_DATA" "$bindir/pg_ctl" \
        -D "$PRIVATE_PG_DATA" -l "$PRIVATE_PG_LOG" -w -t "$READY_TIMEOUT" restart -m fast
    fi
  else
    if port_in_use "$PRIVATE_PG_PORT"; then
      die "port $PRIVATE_PG_PORT on 127.0.0.1 is already in use by another process; choose another with PRIVATE_PG_PORT=<port>"
    fi
    log "starting private PostgreSQL on 127.0.0.1:$PRIVATE_PG_PORT (log: $PRIVATE_PG_LOG)"
    local rc=0
    pg_run_as_owner "$PRIVATE_PG_DIR" "$bindir/pg_ctl" -D "$PRIVATE_PG_DATA" -l "$PRIVATE_PG_LOG" \
      -w -t "$READY_TIMEOUT" start >/dev/null 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
      printf '%s\n' "----- $PRIVATE_PG_LOG (last 30 lines) -----" >&2
      tail -n 30 "$PRIVATE_PG_LOG" >&2 2>/dev/null || true
      die "could not start the private PostgreSQL cluster (pg_ctl exit $rc)"
    fi
  fi

  wait_ready 127.0.0.1 "$PRIVATE_PG_PORT" \
    || die "private PostgreSQL on port $PRIVATE_PG_PORT did not become ready within ${READY_TIMEOUT}s; see $PRIVATE_PG_LOG"
  probe "$PRIVATE_PG_URL" 1 \
    || die "private PostgreSQL is up but '$PRIVATE_PG_URL' does not work as a superuser; see $PRIVATE_PG_LOG"
  emit "$PRIVATE_PG_URL"
}

# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

find_client

if [[ "${FORCE_PRIVATE_PG:-0}" != "1" ]]; then
  # a. explicit URL
  if try_admin_url; then
    emit "$ADMIN_DATABASE_URL"
  fi
  # b. default local server
  if probe "$DEFAULT_URL" 1; then
    emit "$DEFAULT_URL"
  fi
  # c. system cluster that is merely stopped (or listening on another port)
  if url="$(try_system_clusters)"; then
    emit "$url"
  fi
  debug "no usable existing PostgreSQL server; using the private cluster"
fi

# d + e. private cluster
ensure_private
