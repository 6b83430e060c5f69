#!/usr/bin/env bash
# Pushes a tiny image under each given tag to a registry, with curl only (no Docker).
# usage: push-tags.sh BASE_URL REPO TAG...      e.g. push-tags.sh http://127.0.0.1:5000 app 1.0.0 1.0.1
# env: CURL_AUTH="-u user:pass --cacert ca.pem" (optional); UNIQUE=1 gives each tag its own digest;
#      SALT=x changes every digest (a re-push); PLATFORMS="linux/amd64 linux/arm64/v8" pushes an OCI
#      image index with one manifest per platform (each with its own config) under each tag;
#      DOCKER=1 uses Docker's schema 2 media types (manifest list, manifest, config, layer) instead.
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
lsize=$(stat -c %s layer.tar.gz)
mt_index=application/vnd.oci.image.index.v1+json mt_manifest=application/vnd.oci.image.manifest.v1+json
mt_config=application/vnd.oci.image.config.v1+json mt_layer=application/vnd.oci.image.layer.v1.tar+gzip
if [ "${DOCKER:-0}" = 1 ]; then
  mt_index=application/vnd.docker.distribution.manifest.list.v2+json
  mt_manifest=application/vnd.docker.distribution.manifest.v2+json
  mt_config=application/vnd.docker.container.image.v1+json
  mt_layer=application/vnd.docker.image.rootfs.diff.tar.gzip
fi
# manifest CONFIG_DIGEST CONFIG_SIZE EXTRA_JSON > manifest.json
manifest() {
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":%d}]%s}' \
    "$mt_manifest" "$mt_config" "$1" "$2" "$mt_layer" "$ldg" "$lsize" "$3"
}
put_manifest() { # FILE REF MEDIA_TYPE
  curl -sf "${auth[@]}" -X PUT -H "Content-Type: $3" --data-binary "@$1" "$b/manifests/$2" -o /dev/null
}
salt=""
[ -n "${SALT:-}" ] && salt=",\"org.example.salt\":\"$SALT\""
for tag in "$@"; do
  ann=""
  [ "${UNIQUE:-0}" = 1 ] && ann=",\"annotations\":{\"org.example.tag\":\"$tag\"$salt}"
  [ "${UNIQUE:-0}" != 1 ] && [ -n "$salt" ] && ann=",\"annotations\":{${salt#,}}"
  if [ -z "${PLATFORMS:-}" ]; then
    manifest "$cdg" "$(stat -c %s config.json)" "$ann" > manifest.json
    put_manifest manifest.json "$tag" "$mt_manifest"
    continue
  fi
  entries=""
  for p in $PLATFORMS; do
    IFS=/ read -r os arch variant <<< "$p"
    v=""; pv=""
    [ -n "$variant" ] && v=",\"variant\":\"$variant\"" && pv=",\"variant\":\"$variant\""
    printf '{"architecture":"%s","os":"%s"%s,"config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
      "$arch" "$os" "$v" "$(sha256sum layer.tar | cut -d' ' -f1)" > "config-$os-$arch.json"
    pcdg=$(upload "config-$os-$arch.json")
    manifest "$pcdg" "$(stat -c %s "config-$os-$arch.json")" "" > "m-$os-$arch.json"
    mdg=sha256:$(sha256sum "m-$os-$arch.json" | cut -d' ' -f1)
    put_manifest "m-$os-$arch.json" "$mdg" "$mt_manifest"
    entries="$entries${entries:+,}{\"mediaType\":\"$mt_manifest\",\"digest\":\"$mdg\",\"size\":$(stat -c %s "m-$os-$arch.json"),\"platform\":{\"architecture\":\"$arch\",\"os\":\"$os\"$pv}}"
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s]%s}' "$mt_index" "$entries" "$ann" > index.json
  put_manifest index.json "$tag" "$mt_index"
done
