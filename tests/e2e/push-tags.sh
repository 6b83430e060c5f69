#!/usr/bin/env bash
# Pushes a tiny image under each given tag to a registry, with curl only (no Docker).
# usage: push-tags.sh BASE_URL REPO TAG...      e.g. push-tags.sh http://127.0.0.1:5000 app 1.0.0 1.0.1
# env: CURL_AUTH="-u user:pass --cacert ca.pem" (optional); UNIQUE=1 gives each tag its own digest.
set -euo pipefail
base=$1; repo=$2; shift 2
read -r -a auth <<< "${CURL_AUTH:-}"
b="$base/v2/$repo"
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT; cd "$w"
mkdir rootfs && echo "hello $repo" > rootfs/hello.txt
tar --sort=name --mtime=@0 --owner=0 --group=0 -C rootfs -cf layer.tar .
gzip -n -c layer.tar > layer.tar.gz
printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha256sum layer.tar | cut -d' ' -f1)" > config.json
upload() {
  local f=$1 dg loc sep
  dg=sha256:$(sha256sum "$f" | cut -d' ' -f1)
  if curl -sf "${auth[@]}" -o /dev/null -I "$b/blobs/$dg"; then echo "$dg"; return; fi
  loc=$(curl -sf "${auth[@]}" -X POST -D - -o /dev/null "$b/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case $loc in http*) ;; *) loc="$base$loc";; esac
  case $loc in *\?*) sep='&';; *) sep='?';; esac
  curl -sf "${auth[@]}" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc${sep}digest=$dg" -o /dev/null
  echo "$dg"
}
ldg=$(upload layer.tar.gz); cdg=$(upload config.json)
for tag in "$@"; do
  ann=""
  [ "${UNIQUE:-0}" = 1 ] && ann=",\"annotations\":{\"org.example.tag\":\"$tag\"}"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]%s}' \
    "$cdg" "$(stat -c %s config.json)" "$ldg" "$(stat -c %s layer.tar.gz)" "$ann" > manifest.json
  curl -sf "${auth[@]}" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary @manifest.json "$b/manifests/$tag" -o /dev/null
done
