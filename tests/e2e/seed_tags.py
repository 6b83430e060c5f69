#!/usr/bin/env python3
"""seed_tags.py STORAGE_ROOT REPO SRC_TAG PREFIX N: adds N tags pointing at SRC_TAG's manifest
directly in docker-registry's filesystem storage (distribution 2.x layout). Creating 10,000
tags over HTTP takes minutes; this takes about two seconds, and the registry serves them at once."""
import os
import sys

root, repo, src, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tags = os.path.join(root, "docker/registry/v2/repositories", repo, "_manifests/tags")
digest = open(os.path.join(tags, src, "current/link")).read().strip()
algo, hexd = digest.split(":")
for i in range(n):
    t = os.path.join(tags, f"{prefix}{i}")
    os.makedirs(os.path.join(t, "current"), exist_ok=True)
    os.makedirs(os.path.join(t, "index", algo, hexd), exist_ok=True)
    for p in (os.path.join(t, "current/link"), os.path.join(t, "index", algo, hexd, "link")):
        with open(p, "w") as f:
            f.write(digest)
