#!/usr/bin/env python3
"""Generates a tree of Kubernetes YAML files for the setters benchmark.

usage: gen_tree.py DIR [FILES=10000] [MARKED=1000]

Every file is a realistic ~1 KiB Deployment; MARKED of them carry `$imagepolicy` markers
(full image, and name/tag pairs in a HelmRelease-like block). Deterministic.
"""
import os
import sys

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{team}
  labels:
    app.kubernetes.io/name: app-{i}
    app.kubernetes.io/part-of: fleet
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
    spec:
      containers:
      - name: app
        image: registry.example.com/team-{team}/app-{i}:1.0.{patch}{marker}
        ports:
        - containerPort: 8080
          name: http
        resources:
          limits:
            cpu: 500m
            memory: 256Mi
        env:
        - name: LOG_LEVEL
          value: info
      - name: sidecar
        image: registry.example.com/shared/proxy:2.4.1
"""

HELM = """---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: app-{i}
  namespace: team-{team}
spec:
  values:
    image:
      repository: registry.example.com/team-{team}/app-{i} # {{"$imagepolicy": "flux-system:app-{i}:name"}}
      tag: 1.0.{patch} # {{"$imagepolicy": "flux-system:app-{i}:tag"}}
"""


def main():
    root = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    marked = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    step = max(1, files // max(marked, 1))
    count = 0
    for i in range(files):
        team = i % 50
        d = os.path.join(root, f"team-{team}", f"app-{i}")
        os.makedirs(d, exist_ok=True)
        is_marked = count < marked and i % step == 0
        marker = f' # {{"$imagepolicy": "flux-system:app-{i}"}}' if is_marked else ""
        text = DEPLOY.format(i=i, team=team, patch=i % 7, marker=marker)
        if is_marked:
            text += HELM.format(i=i, team=team, patch=i % 7)
            count += 1
        with open(os.path.join(d, "deploy.yaml"), "w") as f:
            f.write(text)
    print(f"{files} files, {count} marked, in {root}")


if __name__ == "__main__":
    main()
