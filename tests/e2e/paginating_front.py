#!/usr/bin/env python3
"""FIXTURE SERVER, not a real registry. Debian's docker-registry (distribution 2.8) ignores `n`
and `last` on tags/list, so this small front adds tag-list pagination (`n`/`last`, `Link:
rel="next"`) on top of a real registry, and injects the faults the client must survive.
Everything else is proxied to the real registry unchanged.

usage: paginating_front.py UPSTREAM_URL PORT MODE [PAGE_SIZE]

MODE: plain | absolute-links | ignore-n | rate-limit | rate-above (tags/list above 10 requests
      in any second: 429, Retry-After on every other one) | flaky | truncated | slow | reject-n |
      garbage | html | redirect-away | redirect-loop | huge | loop | drip (tag lists of any repository answered
      one byte every half second: a hung registry)
GET /__stats returns {"requests": N, "statuses": {...}, "times": [...]} (tags/list requests).
"""
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

UPSTREAM, PORT, MODE = sys.argv[1].rstrip("/"), int(sys.argv[2]), sys.argv[3]
PAGE = int(sys.argv[4]) if len(sys.argv) > 4 else 100
lock = threading.Lock()
stats = {"requests": 0, "statuses": {}, "times": []}
seen_paths = {}
accepted = []  # rate-above: times of the tags/list requests let through
refused = [0]


def upstream_tags(repo):
    with urllib.request.urlopen(f"{UPSTREAM}/v2/{repo}/tags/list") as r:
        return sorted(json.load(r).get("tags") or [])


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        with lock:
            stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.proxy("HEAD")

    def proxy(self, method):
        req = urllib.request.Request(UPSTREAM + self.path, method=method)
        for k in ("Accept", "Authorization"):
            if self.headers.get(k):
                req.add_header(k, self.headers[k])
        try:
            with urllib.request.urlopen(req) as r:
                body = r.read()
                headers = {k: v for k, v in r.headers.items() if k.lower() in ("docker-content-digest", "link")}
                self.reply(r.status, body if method != "HEAD" else b"", headers, r.headers.get("Content-Type"))
        except urllib.error.HTTPError as e:
            self.reply(e.code, e.read(), {}, e.headers.get("Content-Type"))

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/__stats":
            with lock:
                body = json.dumps(stats).encode()
            return self.reply(200, body)
        if not u.path.endswith("/tags/list"):
            return self.proxy("GET")
        repo = u.path[len("/v2/"):-len("/tags/list")]
        q = parse_qs(u.query)
        with lock:
            stats["requests"] += 1
            stats["times"].append(time.time())
            count = seen_paths.get(self.path, 0)
            seen_paths[self.path] = count + 1
            total = stats["requests"]
        n = int(q.get("n", [PAGE])[0])
        last = q.get("last", [None])[0]
        if MODE == "slow":
            time.sleep(0.3)
        if MODE == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "400")
            self.end_headers()
            for _ in range(400):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.5)
            return
        if MODE == "rate-above":
            now = time.monotonic()
            with lock:
                while accepted and now - accepted[0] >= 1.0:
                    accepted.pop(0)
                over = len(accepted) >= 10
                if not over:
                    accepted.append(now)
                else:
                    refused[0] += 1
                    hint = refused[0] % 2 == 1
            if over:
                return self.reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}', {"Retry-After": "1"} if hint else {})
        if MODE == "rate-limit" and count == 0:
            return self.reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}', {"Retry-After": "1"})
        if MODE == "flaky" and total <= 2:
            return self.reply(500, b"upstream exploded")
        if MODE == "reject-n" and n > 100:
            return self.reply(400, b'{"errors":[{"code":"PAGINATION_NUMBER_INVALID"}]}')
        if MODE == "garbage":
            return self.reply(200, b'{"name": "x", "tags": [1, 2')
        if MODE == "html":
            return self.reply(200, b"<html>login</html>", ctype="text/html")
        if MODE == "redirect-loop":
            return self.reply(302, b"", {"Location": f"/v2/{repo}/tags/list?hop={total}"})
        if MODE == "redirect-away":
            return self.reply(302, b"", {"Location": "http://127.0.0.2:9/v2/elsewhere/tags/list"})
        if MODE == "huge":
            filler = b'{"tags": ["' + b"a" * (40 << 20) + b'"]}'
            return self.reply(200, filler)
        tags = upstream_tags(repo)
        size = len(tags) if MODE == "ignore-n" else min(n, PAGE)
        start = 0
        if last is not None and MODE != "ignore-n":
            start = next((i + 1 for i, t in enumerate(tags) if t == last), len(tags))
        page = tags[start:start + size]
        headers = {}
        if start + size < len(tags) and page:
            target = f"/v2/{repo}/tags/list?n={size}&last={page[-1]}"
            if MODE == "loop":
                target = f"/v2/{repo}/tags/list?n={size}&last={tags[0]}"
            if MODE == "absolute-links":
                target = f"http://127.0.0.1:{PORT}{target}"
            headers["Link"] = f'<{target}>; rel="next"'
        body = json.dumps({"name": repo, "tags": page}).encode()
        if MODE == "truncated" and start > 0:
            body = body[: len(body) // 2]
        return self.reply(200, body, headers)


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Clients that hang up early (the "huge" mode) are expected; stay quiet.
        pass


Server(("127.0.0.1", PORT), H).serve_forever()
