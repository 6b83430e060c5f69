#!/usr/bin/env python3
"""FIXTURE: a minimal Docker registry token server (stdlib + the openssl CLI) for the real
docker-registry's `auth: token` mode. testuser:testpass gets the scope it asks for; anonymous
callers get a token with no access; wrong credentials get 401.

usage: tokenserver.py SIGNING_KEY SIGNING_CERT PORT [ACCEPTED_FILE]
  ACCEPTED_FILE: more "user:password" lines to accept, re-read on every request (the GCP OAuth
  fixture appends the access tokens it issues, as Artifact Registry accepts them).
"""
import base64
import json
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEY, CERT, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
ACCEPTED = sys.argv[4] if len(sys.argv) > 4 else None


def accepted(auth):
    pairs = [b"testuser:testpass"]
    if ACCEPTED:
        try:
            with open(ACCEPTED, "rb") as f:
                pairs += [line.strip() for line in f if line.strip()]
        except FileNotFoundError:
            pass
    return any(auth == "Basic " + base64.b64encode(p).decode() for p in pairs)
der = subprocess.run(["openssl", "x509", "-in", CERT, "-outform", "DER"], capture_output=True, check=True).stdout
X5C = [base64.b64encode(der).decode()]


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(claims):
    h = b64u(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": X5C}).encode())
    p = b64u(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=f"{h}.{p}".encode(),
                         capture_output=True, check=True).stdout
    return f"{h}.{p}.{b64u(sig)}"


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        ok = accepted(auth)
        if auth and not ok:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        access = []
        for s in q.get("scope", []):
            parts = s.split(":", 2)
            if ok and len(parts) == 3:
                access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
        now = int(time.time())
        tok = sign({"iss": "test-issuer", "sub": "testuser" if ok else "", "aud": q.get("service", [""])[0],
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access})
        body = json.dumps({"token": tok, "access_token": tok, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
