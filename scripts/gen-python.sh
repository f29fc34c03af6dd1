#!/usr/bin/env bash
# Generates Python messages, type stubs and gRPC stubs for every package in proto/ with
# grpcio-tools (PyPI), offline. Output: $1 (default gen/python), importable as
# `logistics.identity.v1.identity_pb2` etc.
#
#   scripts/gen-python.sh [OUT_DIR]
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO="$(repo_root)"
OUT="${1:-$REPO/gen/python}"
"$REPO/scripts/ensure-tools.sh"
PY="$REPO/.tools/venv/bin/python"

mkdir -p "$OUT"
mapfile -t files < <(cd "$REPO/proto" && find logistics -name '*.proto' | sort)
wkt="$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
(cd "$REPO/proto" && "$PY" -m grpc_tools.protoc -I . -I "$wkt" \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" "${files[@]}")
# Namespace packages need no __init__.py; generated imports are absolute from OUT.
