#!/usr/bin/env python3
"""FIXTURE: stands in for Google's OAuth 2.0 token endpoint (oauth2.googleapis.com/token), which
has no local server. It takes the service-account JWT assertion that a client signs
(grant_type urn:ietf:params:oauth:grant-type:jwt-bearer), verifies its RS256 signature with the
service account's public key (the openssl CLI) and its claims (iss = the account's email, aud =
this endpoint, scope includes cloud-platform, unexpired, at most one hour), and answers an access
token. Every token it issues is appended as "oauth2accesstoken:<token>" to ACCEPTED_FILE, which
tokenserver.py reads, so the token unlocks the registry as Artifact Registry's would.

usage: gcp_oauth.py PORT PUBLIC_KEY_PEM CLIENT_EMAIL ACCEPTED_FILE
  POST /token   GET /stats -> {"issued": N, "refused": M}
"""
import base64
import json
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

PORT, PUB, EMAIL, ACCEPTED = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
AUD = f"http://127.0.0.1:{PORT}/token"
stats = {"issued": 0, "refused": 0}


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check(assertion):
    parts = assertion.split(".")
    if len(parts) != 3:
        return "not a JWT"
    header, claims = json.loads(b64d(parts[0])), json.loads(b64d(parts[1]))
    if header.get("alg") != "RS256":
        return "alg must be RS256"
    with tempfile.NamedTemporaryFile() as sig:
        sig.write(b64d(parts[2]))
        sig.flush()
        v = subprocess.run(["openssl", "dgst", "-sha256", "-verify", PUB, "-signature", sig.name],
                           input=f"{parts[0]}.{parts[1]}".encode(), capture_output=True)
    if v.returncode != 0:
        return "bad signature"
    now = time.time()
    if claims.get("iss") != EMAIL:
        return "wrong iss"
    if claims.get("aud") != AUD:
        return "wrong aud"
    if "https://www.googleapis.com/auth/cloud-platform" not in claims.get("scope", "").split():
        return "scope lacks cloud-platform"
    iat, exp = claims.get("iat", 0), claims.get("exp", 0)
    if not (iat - 60 <= now < exp) or exp - iat > 3600:
        return "bad iat/exp"
    return None


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200 if self.path == "/stats" else 404, stats)

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode())
        why = None
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            why = "unsupported grant_type"
        else:
            try:
                why = check(form.get("assertion", [""])[0])
            except (ValueError, KeyError) as e:
                why = f"unreadable assertion: {e}"
        if why:
            stats["refused"] += 1
            return self.reply(400, {"error": "invalid_grant", "error_description": why})
        token = "ya29.fixture-" + uuid.uuid4().hex
        with open(ACCEPTED, "a") as f:
            f.write(f"oauth2accesstoken:{token}\n")
        stats["issued"] += 1
        self.reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
