"""A fake agentgen server, for the verifier's spoof tests: it answers GET /v1/locality with a
copied attestation body it is given, and chat completions with a canned answer (as a server that
forwards to a model elsewhere would). Nothing here runs a model.

Usage: fake_locality.py ATTESTATION_JSON_FILE MODE
MODE: own_pid   report this process's pid
      pid1      report pid 1
      map       report own pid and mmap the attested model file (as a real server would)
      redirect  answer every request with a 302 to another port
It prints the port it listens on (127.0.0.1) on its first line of stdout.
"""

import json
import mmap
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

body = json.load(open(sys.argv[1]))
mode = sys.argv[2]
body["pid"] = 1 if mode == "pid1" else os.getpid()
keep = []
if mode == "map":
    f = open(body["model_path"], "rb")
    keep.append((f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)))

ANSWER = {
    "id": "chatcmpl-fake",
    "object": "chat.completion",
    "model": body.get("model", "fake"),
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "forwarded"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, status, payload, extra=()):
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if mode == "redirect":
            return self.reply(302, {}, [("Location", "http://127.0.0.1:9/v1/locality")])
        if self.path.endswith("/v1/locality"):
            return self.reply(200, body)
        self.reply(404, {"error": {"message": "no route"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if mode == "redirect":
            return self.reply(307, {}, [("Location", "http://127.0.0.1:9/v1/chat/completions")])
        self.reply(200, ANSWER)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
