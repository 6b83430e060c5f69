#!/usr/bin/env python3
"""FIXTURE: records the notifications tagpilot posts after a push, the way a Flux Receiver of type
generic-hmac and a Slack incoming webhook would see them (neither exists as a local server here).

Every POST (and GET) is appended to LOG as one JSON line {path, headers, body, signature}. On the paths
given with --hmac PATH, the `X-Signature: sha256=<hex>` header is verified independently of
tagpilot (Python's hmac module, key from --key) and a bad or missing signature is answered 400,
as notification-controller does. --fail PATH=N answers the first N requests to PATH with 500
(to exercise retries); --status PATH=CODE always answers CODE.

usage: hook_recorder.py PORT LOG --key KEY [--hmac PATH]... [--fail PATH=N]... [--status PATH=CODE]...
"""
import argparse
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("log")
p.add_argument("--key", default="")
p.add_argument("--hmac", action="append", default=[])
p.add_argument("--fail", action="append", default=[])
p.add_argument("--status", action="append", default=[])
args = p.parse_args()
fail = {k: int(v) for k, v in (f.split("=", 1) for f in args.fail)}
status = {k: int(v) for k, v in (s.split("=", 1) for s in args.status)}
lock = threading.Lock()


def verify(header, body):
    if not header or not header.startswith("sha256="):
        return False
    want = hmac.new(args.key.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256="):], want)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        signature = None
        code = 200
        if self.path in args.hmac:
            signature = verify(self.headers.get("X-Signature"), body)
            if not signature:
                code = 400
        with lock:
            if code == 200 and fail.get(self.path, 0) > 0:
                fail[self.path] -= 1
                code = 500
            code = status.get(self.path, code)
            with open(args.log, "a") as f:
                f.write(json.dumps({
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "signature": signature,
                    "answer": code,
                }) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # A GET is recorded the same way (e.g. a token realm that must never be asked).
    do_GET = do_POST

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
