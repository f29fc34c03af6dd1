# shellcheck shell=bash
# Put the repo-local tools installed by scripts/ensure-tools.sh on PATH.
#
#   source scripts/env.sh        (bash; from any directory)
#
# Adds .tools/npm/node_modules/.bin (buf) and .tools/venv/bin (grpcurl,
# python with grpc_tools) to the front of PATH, without duplicating entries
# when sourced more than once.  It does not install anything and does not
# change shell options (it is sourced into your shell, so no `set -euo
# pipefail` here).

__repo_env_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd -P)"

for __repo_env_dir in "$__repo_env_root/.tools/venv/bin" "$__repo_env_root/.tools/npm/node_modules/.bin"; do
  case ":${PATH:-}:" in
    *":$__repo_env_dir:"*) ;;
    *) PATH="$__repo_env_dir${PATH:+:$PATH}" ;;
  esac
done
export PATH

if [[ ! -x "$__repo_env_root/.tools/npm/node_modules/.bin/buf" || ! -x "$__repo_env_root/.tools/venv/bin/grpcurl" ]]; then
  printf 'env.sh: tools not installed yet; run %s/scripts/ensure-tools.sh\n' "$__repo_env_root" >&2
fi

unset __repo_env_root __repo_env_dir
