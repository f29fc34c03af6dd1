#!/usr/bin/env bash
# The whole test suite, on a fresh clone: finds or starts PostgreSQL, installs the tools
# (buf, grpcurl, grpcio-tools), then runs every Rust test (unit and integration, each test on
# its own database) and the end-to-end tests (the README's grpcurl lines, a generated Python
# client) against the stack started by scripts/stack.sh.
#
#   scripts/test.sh            everything
#   scripts/test.sh --rust     only cargo test
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(repo_root)"
cd "$REPO"

ADMIN_DATABASE_URL="$(scripts/ensure-postgres.sh)"
export ADMIN_DATABASE_URL
scripts/ensure-tools.sh
# pgbackrest (the restore drill) and graphviz (the ERD check).
scripts/ensure-packages.sh
# shellcheck source=SCRIPTDIR/env.sh
source scripts/env.sh

cargo test --workspace --locked

if [[ "${1:-}" != "--rust" ]]; then
  .tools/venv/bin/python -m unittest discover -s tests/e2e -v
fi
