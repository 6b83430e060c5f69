#!/usr/bin/env python3
"""BENCHMARK FIXTURE (not a test double for correctness): an OCI distribution tag-list endpoint
that answers any repository with TAGS synthetic semver tags, paginated with `n`/`last` and
`Link` as the distribution spec says. It exists because pushing 1,000 x 1,000 tags into a real
docker-registry would take hours; it serves only what `tagpilot run` needs for a scan.
`POST /bench/push/<repository>?tag=T` adds tag T to one repository (the scale benchmark's
"new release" during the initial pass); it is the fixture's control, not a registry API.

usage: synthetic_registry.py PORT TAGS
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, N = int(sys.argv[1]), int(sys.argv[2])
TAGS = [f"{i // 100}.{(i // 10) % 10}.{i % 10}" for i in range(N)]
EXTRA = {}  # repository -> tags pushed through /bench/push, after TAGS


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/v2/":
            return self.reply(200, b"{}")
        if not u.path.endswith("/tags/list"):
            return self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
        name = u.path[len("/v2/"):-len("/tags/list")]
        q = parse_qs(u.query)
        n = int(q.get("n", ["100"])[0])
        last = q.get("last", [None])[0]
        tags = TAGS + EXTRA.get(name, [])
        start = tags.index(last) + 1 if last in tags else 0
        page = tags[start:start + n]
        headers = []
        if start + n < len(tags):
            headers.append(("Link", f'</v2/{name}/tags/list?n={n}&last={page[-1]}>; rel="next"'))
        self.reply(200, json.dumps({"name": name, "tags": page}).encode(), headers)

    def do_POST(self):
        u = urlparse(self.path)
        if not u.path.startswith("/bench/push/"):
            return self.reply(404, b"{}")
        EXTRA.setdefault(u.path[len("/bench/push/"):], []).append(parse_qs(u.query)["tag"][0])
        self.reply(201, b"{}")

    def reply(self, code, body, headers=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
