#!/usr/bin/env python3
"""FIXTURE: stands in for Google's OIDC side of a Pub/Sub push subscription, which has no local
server: it publishes a JSON Web Key Set at /oauth2/v3/certs (as www.googleapis.com does) and, for
the tests only, mints RS256 ID tokens at /mint the way Pub/Sub would attach them. Keys are made
at start with the openssl CLI; signing is `openssl dgst -sha256 -sign`. /stats reports how often
the key set was fetched (to check that tagpilot caches it). It is also a generic OIDC issuer
(what a CI system's token service is to a generic-oidc Receiver): issuer http://127.0.0.1:PORT,
with OIDC discovery naming the same key set.

usage: google_oidc.py PORT WORKDIR
  GET  /.well-known/openid-configuration   {"issuer": "http://127.0.0.1:PORT", "jwks_uri": …}
  GET  /oauth2/v3/certs
  POST /mint   body: JSON claims (iss/iat/exp default to Google's issuer and one hour);
               header X-Kid overrides the key id (to mint tokens for unknown keys)
  GET  /stats
"""
import base64
import json
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, WORK = int(sys.argv[1]), sys.argv[2]
KEY = os.path.join(WORK, "google-signing-key.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", KEY],
               check=True, capture_output=True)
modulus = subprocess.run(["openssl", "rsa", "-in", KEY, "-noout", "-modulus"], check=True,
                         capture_output=True, text=True).stdout.strip().split("=", 1)[1]
KID = "fixture-key-1"
fetches = 0


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JWKS = json.dumps({"keys": [{
    "kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
    "n": b64(bytes.fromhex(modulus)), "e": b64((65537).to_bytes(3, "big")),
}]}).encode()


def mint(claims, kid):
    now = int(time.time())
    claims.setdefault("iss", "https://accounts.google.com")
    claims.setdefault("iat", now)
    claims.setdefault("exp", now + 3600)
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    signing_input = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input,
                         check=True, capture_output=True).stdout
    return signing_input.decode() + "." + b64(sig)


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        global fetches
        if self.path == "/oauth2/v3/certs":
            fetches += 1
            self.reply(200, JWKS)
        elif self.path == "/.well-known/openid-configuration":
            base = f"http://127.0.0.1:{PORT}"
            self.reply(200, json.dumps({"issuer": base, "jwks_uri": base + "/oauth2/v3/certs"}).encode())
        elif self.path == "/stats":
            self.reply(200, json.dumps({"jwks_fetches": fetches}).encode())
        else:
            self.reply(404, b"{}")

    def do_POST(self):
        if self.path != "/mint":
            return self.reply(404, b"{}")
        claims = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        self.reply(200, mint(claims, self.headers.get("X-Kid", KID)).encode(), "text/plain")

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
