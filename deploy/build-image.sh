#!/usr/bin/env bash
# Builds forgehand's image from Containerfile: `make image`, or by hand.
#   IMAGE   the tag to build (default localhost/forgehand:latest)
#   AGENTS  the agent CLIs to put in it: claude codex gemini opencode aider (default: none)
#   ENGINE  podman (default) or docker
#   CA_BUNDLE  the CA bundle downloads are checked against during the build (default: PIP_CERT,
#           else the system's); handed to the build as a secret, never written into the image.
# Where no image registry is reachable (BASE_FROM_DEBIAN=1, or pulling the base fails), the
# Debian base is made from Debian's packages with mmdebstrap and imported under the name the
# Containerfile uses, so nothing but Debian's, PyPI's and npm's servers is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${ENGINE:-podman}
image=${IMAGE:-localhost/forgehand:latest}
base=docker.io/library/debian:bookworm-slim
ca=${CA_BUNDLE:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/forgehand/image

if ! "$engine" image inspect "$base" >/dev/null 2>&1; then
  if [ "${BASE_FROM_DEBIAN:-0}" = 1 ] || ! "$engine" pull -q "$base"; then
    mkdir -p "$cache"
    if [ ! -s "$cache/bookworm-minbase.tar" ]; then
      echo "making the Debian 12 base with mmdebstrap (a minute or two)"
      mmdebstrap --variant=minbase --format=tar --quiet bookworm "$cache/bookworm-minbase.tar.part"
      mv "$cache/bookworm-minbase.tar.part" "$cache/bookworm-minbase.tar"
    fi
    "$engine" import "$cache/bookworm-minbase.tar" "$base" >/dev/null
  fi
fi
"$engine" build --secret "id=ca,src=$ca" --build-arg "AGENTS=${AGENTS:-}" -t "$image" \
  -f Containerfile .
