#!/usr/bin/env python3
"""FIXTURE: stands in for Azure's two HTTPS endpoints that have no local server.

- Entra ID (AZURE_AUTHORITY_HOST=https://127.0.0.1:ENTRA_PORT): POST /<tenant>/oauth2/v2.0/token
  with grant_type=client_credentials; the tenant, client id and secret must be the ones given,
  and the scope the ACR audience; answers an access token.
- ACR (https://<registry>:ACR_PORT, the registry name mapped to 127.0.0.1 by the test):
  POST /oauth2/exchange (grant_type=access_token, service=<registry>, an access token issued
  above) answers a refresh token (a JWT whose exp is 3 hours ahead); GET /oauth2/token with
  Basic 00000000-0000-0000-0000-000000000000:<refresh token> is passed on to the registry's
  token server (tokenserver.py) as testuser; /v2/ requests are proxied to the real
  docker-registry, with its WWW-Authenticate realm pointed here, as ACR serves both.

Both listeners use CERT/KEY (the test CA signs them). GET /stats on either gives counts.

usage: azure_fixture.py ENTRA_PORT ACR_PORT CERT KEY REGISTRY TENANT CLIENT_ID CLIENT_SECRET
                        UPSTREAM_REGISTRY_URL TOKEN_SERVER_URL
"""
import base64
import json
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

(ENTRA_PORT, ACR_PORT, CERT, KEY, REGISTRY, TENANT, CLIENT_ID, SECRET, UPSTREAM, TOKENS) = sys.argv[1:11]
SCOPE = "https://containerregistry.azure.net/.default"
USER = "00000000-0000-0000-0000-000000000000"
aad_tokens, refresh_tokens = set(), set()
stats = {"entra": 0, "entra_refused": 0, "exchange": 0, "exchange_refused": 0, "token": 0, "token_refused": 0}
lock = threading.Lock()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, body=b"", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def form(self):
        return {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()).items()}

    def count(self, key):
        with lock:
            stats[key] += 1


class Entra(Base):
    def do_GET(self):
        self.reply(200 if self.path == "/stats" else 404, stats)

    def do_POST(self):
        f = self.form()
        ok = (self.path == f"/{TENANT}/oauth2/v2.0/token" and f.get("grant_type") == "client_credentials"
              and f.get("client_id") == CLIENT_ID and f.get("client_secret") == SECRET and f.get("scope") == SCOPE)
        if not ok:
            self.count("entra_refused")
            return self.reply(401, {"error": "invalid_client"}, [("Content-Type", "application/json")])
        token = "aad-" + uuid.uuid4().hex
        with lock:
            aad_tokens.add(token)
        self.count("entra")
        self.reply(200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token},
                   [("Content-Type", "application/json")])


class Acr(Base):
    def do_POST(self):
        if self.path != "/oauth2/exchange":
            return self.reply(404)
        f = self.form()
        with lock:
            ok = (f.get("grant_type") == "access_token" and f.get("service") == REGISTRY
                  and f.get("access_token") in aad_tokens)
        if not ok:
            self.count("exchange_refused")
            return self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]}, [("Content-Type", "application/json")])
        claims = {"jti": uuid.uuid4().hex, "sub": "tagpilot", "exp": int(time.time()) + 3 * 3600,
                  "grant_type": "refresh_token", "aud": REGISTRY}
        refresh = b64u(b'{"alg":"none","typ":"JWT"}') + "." + b64u(json.dumps(claims).encode()) + "."
        with lock:
            refresh_tokens.add(refresh)
        self.count("exchange")
        self.reply(200, {"refresh_token": refresh}, [("Content-Type", "application/json")])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/stats":
            return self.reply(200, stats)
        if url.path == "/oauth2/token":
            auth = self.headers.get("Authorization", "")
            try:
                user, password = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)
            except (IndexError, ValueError):
                user, password = "", ""
            with lock:
                ok = auth.startswith("Basic ") and user == USER and password in refresh_tokens
            if not ok:
                self.count("token_refused")
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED"}]})
            self.count("token")
            req = urllib.request.Request(f"{TOKENS}?{url.query}", headers={
                "Authorization": "Basic " + base64.b64encode(b"testuser:testpass").decode()})
            with urllib.request.urlopen(req) as r:
                return self.reply(200, r.read(), [("Content-Type", "application/json")])
        # The registry API, proxied.
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
        req = urllib.request.Request(UPSTREAM + self.path, headers=headers, method=self.command)
        try:
            r = urllib.request.urlopen(req)
            code, body, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            code, body, hdrs = e.code, e.read(), e.headers
        out = []
        for k, v in hdrs.items():
            if k.lower() == "www-authenticate":
                v = v.replace(TOKENS, f"https://{REGISTRY}:{ACR_PORT}/oauth2/token")
            if k.lower() in ("content-type", "www-authenticate", "docker-content-digest", "link"):
                out.append((k, v))
        self.reply(code, body, out)


def serve(port, handler):
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


threading.Thread(target=serve, args=(ENTRA_PORT, Entra), daemon=True).start()
serve(ACR_PORT, Acr)
