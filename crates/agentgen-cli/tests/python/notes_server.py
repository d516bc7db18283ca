"""A stdio MCP server for the session tests, standard library only (no `mcp` package needed).

    python3 notes_server.py FILE [HOLD_SECONDS]

One tool, `append(text)`: appends the line "<id> <text>" to FILE (flushed and synced), then
holds for HOLD_SECONDS (default 0.3) before answering "appended <id>", where <id> is new for
every call. The hold is a window between the effect and its result for a kill to land in; the
id ties each line of FILE to the one result that reported it.
"""

import json
import os
import sys
import time
import uuid

PATH = sys.argv[1]
HOLD = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3

TOOL = {
    "name": "append",
    "description": "Appends one short line of text to the notes file.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "The line to append."}},
        "required": ["text"],
    },
}


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def append(arguments):
    token = uuid.uuid4().hex
    text = " ".join(str(arguments.get("text", "")).split())
    with open(PATH, "a", encoding="utf-8") as f:
        f.write(f"{token} {text}\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(HOLD)
    return {"content": [{"type": "text", "text": f"appended {token}"}], "isError": False}


def answer(method, params):
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call" and params.get("name") == "append":
        return append(params.get("arguments") or {})
    if method == "ping":
        return {}
    return None


for line in sys.stdin:
    if not line.strip():
        continue
    request = json.loads(line)
    if "id" not in request:
        continue  # a notification
    result = answer(request.get("method"), request.get("params") or {})
    if result is None:
        send({"jsonrpc": "2.0", "id": request["id"],
              "error": {"code": -32601, "message": f"unknown method {request.get('method')}"}})
    else:
        send({"jsonrpc": "2.0", "id": request["id"], "result": result})
