#!/usr/bin/env bash
# Stop the private PostgreSQL cluster started by scripts/ensure-postgres.sh.
#
#   scripts/stop-private-postgres.sh            # stop (keeps the data)
#   scripts/stop-private-postgres.sh --remove   # stop and delete $REPO/.local/pg
#
# Honours PRIVATE_PG_DIR like ensure-postgres.sh.  Does nothing (successfully)
# if the cluster does not exist or is not running.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

remove=0
for arg in "$@"; do
  case "$arg" in
    --remove | --purge) remove=1 ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument: $arg (expected --remove)" ;;
  esac
done

pg_private_vars

if [[ -f "$PRIVATE_PG_DATA/PG_VERSION" ]]; then
  bindir="$(pg_server_bindir)" || die "cannot find pg_ctl to stop $PRIVATE_PG_DATA"
  if pg_run_as_owner "$PRIVATE_PG_DATA" "$bindir/pg_ctl" -D "$PRIVATE_PG_DATA" status >/dev/null 2>&1; then
    run_quiet "pg_ctl stop" pg_run_as_owner "$PRIVATE_PG_DATA" "$bindir/pg_ctl" \
      -D "$PRIVATE_PG_DATA" -w -t 60 stop -m fast
  fi
elif [[ -f "$PRIVATE_PG_DATA/postmaster.pid" ]]; then
  warn "$PRIVATE_PG_DATA has a postmaster.pid but no PG_VERSION; not touching it"
fi

if [[ $remove -eq 1 ]]; then
  rm -rf "$PRIVATE_PG_DIR" "$PRIVATE_PG_DIR.lock"
  # socket directory may live outside PRIVATE_PG_DIR (long paths)
  case "$PRIVATE_PG_SOCKDIR" in
    "$PRIVATE_PG_DIR"/*) ;;
    *) rm -rf "$PRIVATE_PG_SOCKDIR" ;;
  esac
fi
