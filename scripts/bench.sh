#!/usr/bin/env bash
# Runs the benchmark on a fresh clone: a release build of the stack on its own database
# (logistics_bench, recreated each run) and its own ports, two tenants loaded with `bench load`,
# then `bench run` (extra arguments go to it, e.g. --concurrency 1,8 --seconds 5; BENCH_SCALE=0.1
# loads a tenth of the data set). Results are printed and written under bench/results/. The
# stack is stopped afterwards.
#
# BENCH_REUSE=1 is for iterating on a fix: it keeps the database a previous run loaded (loading
# only if there is none), restarts the stack on the current build and leaves it running. What
# earlier runs wrote (bookings, reservations, partners) stays, so quote only fresh runs.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(repo_root)"
export STACK_DIR="$REPO/.local/bench"
export STACK_DATABASE=logistics_bench
export CARGO_PROFILE=release
export IDENTITY_ADDR=127.0.0.1:51051 PARTNER_ADDR=127.0.0.1:51052 FLEET_ADDR=127.0.0.1:51053
export INVENTORY_ADDR=127.0.0.1:51054 SHIPMENT_ADDR=127.0.0.1:51055
export IDENTITY_METRICS_ADDR=127.0.0.1:9201 PARTNER_METRICS_ADDR=127.0.0.1:9202
export FLEET_METRICS_ADDR=127.0.0.1:9203 INVENTORY_METRICS_ADDR=127.0.0.1:9204
export SHIPMENT_METRICS_ADDR=127.0.0.1:9205
export DEMO_TENANT_ID=01930000-0000-7000-8000-00000000b001
export DEMO_ADMIN_EMAIL=admin@bench.example
export DEMO_ADMIN_PASSWORD=bench-admin-password
SECOND_TENANT_ID=01930000-0000-7000-8000-00000000b002

mkdir -p "$STACK_DIR"
ADMIN_URL="$("$REPO/scripts/ensure-postgres.sh")"
"$REPO/scripts/stack.sh" down
LOAD=1
if [ -n "${BENCH_REUSE:-}" ] && [ -f "$STACK_DIR/loaded" ] &&
  psql -X -At "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$STACK_DATABASE'" | grep -q 1; then
  log "BENCH_REUSE: keeping the loaded database $STACK_DATABASE"
  LOAD=""
else
  rm -f "$STACK_DIR/loaded"
  psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $STACK_DATABASE WITH (FORCE)" >/dev/null
fi
log "starting the stack (release build; the first build takes several minutes)"
"$REPO/scripts/stack.sh" up >"$STACK_DIR/up.out" 2>&1 || die "stack did not start: $(tail -n 20 "$STACK_DIR/up.out")"
# The tables a run fills from empty (sagas, bookings, reservations) are planned from statistics
# taken while they were empty unless autovacuum analyzes them as they grow, as it does in any
# real deployment. A cluster set up with autovacuum off (CI machines often are) gets it on for
# the run and back as it was afterwards.
RESTORE_AUTOVACUUM=""
if [ "$(psql -X -At "$ADMIN_URL" -c "SHOW autovacuum")" = off ]; then
  log "autovacuum is off on this cluster: on for the run"
  psql -X -q "$ADMIN_URL" -c "ALTER SYSTEM SET autovacuum = on" -c "SELECT pg_reload_conf()" >/dev/null
  RESTORE_AUTOVACUUM=1
fi
finish() {
  [ -n "${BENCH_REUSE:-}" ] || "$REPO/scripts/stack.sh" down
  if [ -n "$RESTORE_AUTOVACUUM" ]; then
    psql -X -q "$ADMIN_URL" -c "ALTER SYSTEM RESET autovacuum" -c "SELECT pg_reload_conf()" >/dev/null
  fi
}
trap finish EXIT
set -a
source "$STACK_DIR/secrets.env"
set +a

(cd "$REPO" && cargo build --quiet --locked --release -p bench --bin bench)
BIN="$REPO/target/release"
BENCH_ADMIN_URL="$(database_url_for "$ADMIN_URL" "$(admin_user "$ADMIN_URL")" "$(admin_password "$ADMIN_URL")")"
# Both `load` and `run` log in as the loaded tenant's admin (a reused database too), and both
# reach the database as its superuser (`run` checkpoints before each measurement and checks
# the books after the plans).
export BENCH_PASSWORD="$DEMO_ADMIN_PASSWORD" BENCH_DATABASE_URL="$BENCH_ADMIN_URL"
if [ -n "$LOAD" ]; then
  "$BIN/identity" bootstrap --database-url "$(database_url_for "$ADMIN_URL" identity_app "$IDENTITY_APP_PASSWORD")" \
    --tenant-id "$SECOND_TENANT_ID" --admin-email "$DEMO_ADMIN_EMAIL" --admin-password "$DEMO_ADMIN_PASSWORD" >/dev/null

  "$BIN/bench" load --tenant "$DEMO_TENANT_ID" --tenant "$SECOND_TENANT_ID" --email "$DEMO_ADMIN_EMAIL" \
    --identity-url "http://$IDENTITY_ADDR" --partner-url "http://$PARTNER_ADDR" --fleet-url "http://$FLEET_ADDR" \
    ${BENCH_SCALE:+--scale "$BENCH_SCALE"}
  # A database in service has been vacuumed since its rows were written (visibility map set, so
  # index-only scans skip the heap); done now, autovacuum has only what the run changes to do.
  log "vacuuming the loaded database"
  psql -X -q "$BENCH_ADMIN_URL" -c "VACUUM (ANALYZE)" >/dev/null
  touch "$STACK_DIR/loaded"
fi
BENCH_INVENTORY_DATABASE_URL="$(database_url_for "$ADMIN_URL" inventory_app "$INVENTORY_APP_PASSWORD")" \
  BENCH_PARTNER_DATABASE_URL="$(database_url_for "$ADMIN_URL" partner_app "$PARTNER_APP_PASSWORD")" \
  "$BIN/bench" run --identity-url "http://$IDENTITY_ADDR" --inventory-url "http://$INVENTORY_ADDR" \
  --partner-url "http://$PARTNER_ADDR" --shipment-url "http://$SHIPMENT_ADDR" \
  --metrics-url "http://$IDENTITY_METRICS_ADDR/metrics,http://$PARTNER_METRICS_ADDR/metrics,http://$FLEET_METRICS_ADDR/metrics,http://$INVENTORY_METRICS_ADDR/metrics,http://$SHIPMENT_METRICS_ADDR/metrics" \
  --tenant "$DEMO_TENANT_ID" --email "$DEMO_ADMIN_EMAIL" --pid-dir "$STACK_DIR" --out "$REPO/bench/results" "$@"
