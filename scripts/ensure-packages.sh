#!/usr/bin/env bash
# Install the Debian packages the operations tool (tools/ops) drives, when missing:
#
#   pgbackrest   backups, WAL archiving, point-in-time restore     (ops backup, ops restore)
#   graphviz     `dot`, which renders the ERD as SVG                (ops erd)
#
# Run by scripts/test.sh and scripts/stack.sh; a second run only checks and prints nothing.
# Needs root or passwordless sudo the first time (apt-get update + install).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# command -> Debian package that provides it.
declare -A PACKAGE_OF=([pgbackrest]=pgbackrest [dot]=graphviz)

missing=()
for command in "${!PACKAGE_OF[@]}"; do
  have "$command" || missing+=("${PACKAGE_OF[$command]}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

have apt-get || die "missing ${missing[*]} and apt-get is unavailable; install them by hand"
with_lock "${TMPDIR:-/tmp}/logistics-ensure-packages.lock"
log "installing ${missing[*]} with apt-get"
run_quiet "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
run_quiet "apt-get install ${missing[*]}" as_root env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
for command in "${!PACKAGE_OF[@]}"; do
  have "$command" || die "$command still missing after installing ${PACKAGE_OF[$command]}"
done
