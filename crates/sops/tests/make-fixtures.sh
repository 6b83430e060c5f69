#!/usr/bin/env bash
# Regenerates tests/data with the real sops and age (see data/README.md).
set -euo pipefail
cd "$(dirname "$0")/data"
SOPS=${SOPS:-sops}
rm -f ./*.agekey ./*.sops.*
age-keygen -o test.agekey 2>/dev/null; age-keygen -o other.agekey 2>/dev/null
r=$(grep -o 'age1[a-z0-9]*' test.agekey); o=$(grep -o 'age1[a-z0-9]*' other.agekey)
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
cat > "$w/sec.yaml" <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: regcred
  namespace: flux-system
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"127.0.0.1:5000":{"auth":"dGVzdHVzZXI6cGxhbnRlZC1wYXNz"}}}'
data:
  note: aGVsbG8=
YAML
echo '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "typed", "namespace": "default"}, "stringData": {"n": "1"}, "extra": {"count": 3, "ratio": 1.5, "on": true, "list": ["x", 2, false], "none": null, "empty": ""}}' > "$w/typed.json"
"$SOPS" encrypt --age "$r" --encrypted-regex '^(data|stringData)$' "$w/sec.yaml" > secret.sops.yaml
"$SOPS" encrypt --age "$r" --input-type json --output-type json "$w/typed.json" > typed.sops.json
"$SOPS" encrypt --age "$o" --encrypted-regex '^(data|stringData)$' "$w/sec.yaml" > other.sops.yaml
# mac_only_encrypted is a creation-rule setting, not a flag.
printf 'creation_rules:\n  - age: "%s,%s"\n    encrypted_regex: "^(data|stringData)$"\n    mac_only_encrypted: true\n' "$r" "$o" > "$w/.sops.yaml"
cp "$w/sec.yaml" "$w/maconly.yaml"
(cd "$w" && "$SOPS" encrypt maconly.yaml) > maconly.sops.yaml
