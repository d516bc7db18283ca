#!/usr/bin/env bash
# Offline proof: run inside a network namespace that has only loopback, e.g.
#   unshare -rn crates/agentgen-server/tests/python/offline_team.sh
# It brings loopback up, checks that no other interface exists, starts the server on the
# local model, runs the tool-using AutoGen agent and team against it, and stops the server.
#
# Environment:
#   AGENTGEN_SERVE   the server command, run with `--host H --port P --model PATH` appended
#                    (default: `agentgen serve` from PATH)
#   AGENTGEN_TEST_MODEL  the GGUF (default: the test model in the agentgen model cache)
#   PYTHON           a Python with openai, autogen-agentchat and autogen-ext[openai] (default python3)
#   AGENTGEN_PORT    port (default 18080)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
port="${AGENTGEN_PORT:-18080}"
serve="${AGENTGEN_SERVE:-agentgen serve}"
if [[ -z "${AGENTGEN_TEST_MODEL:-}" ]]; then
  cache="${AGENTGEN_HOME:+$AGENTGEN_HOME/models}"
  cache="${cache:-${XDG_CACHE_HOME:-$HOME/.cache}/agentgen/models}"
  AGENTGEN_TEST_MODEL="$cache/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
fi
if [[ ! -f "$AGENTGEN_TEST_MODEL" ]]; then
  echo "offline_team: no model at $AGENTGEN_TEST_MODEL (set AGENTGEN_TEST_MODEL)" >&2
  exit 2
fi

ip link set lo up
interfaces="$("$python" -c 'import socket; print(" ".join(n for _, n in socket.if_nameindex()))')"
if [[ "$interfaces" != "lo" ]]; then
  echo "offline_team: not in a loopback-only network namespace (interfaces: $interfaces); run it under unshare -rn" >&2
  exit 2
fi
echo "offline_team: network interfaces: $interfaces"

log="$(mktemp)"
# shellcheck disable=SC2086 # AGENTGEN_SERVE is a command line
$serve --host 127.0.0.1 --port "$port" --model "$AGENTGEN_TEST_MODEL" >"$log" 2>&1 &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
}
trap stop EXIT

url="http://127.0.0.1:$port"
ready=0
for _ in $(seq 1 600); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "offline_team: the server exited:" >&2
    cat "$log" >&2
    exit 1
  fi
  if "$python" -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('$url/health', timeout=2).status != 200)" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.5
done
if [[ $ready -ne 1 ]]; then
  echo "offline_team: the server never became ready:" >&2
  tail -n 50 "$log" >&2
  exit 1
fi
echo "offline_team: server ready at $url"

status=0
AGENTGEN_URL="$url" "$python" "$here/test_autogen.py" || status=$?
if [[ $status -ne 0 ]]; then
  echo "offline_team: server log:" >&2
  tail -n 50 "$log" >&2
fi
exit $status
