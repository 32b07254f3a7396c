#!/usr/bin/env bash
# What `make test-image` needs on a Debian machine, installed when missing (as root): podman
# and its runtime; netavark, aardvark-dns and iptables for compose.yaml's own network, whose
# containers reach `redis` by name through aardvark-dns (Debian 12's podman may come with CNI
# instead, which has no such DNS without the dnsname plugin); mmdebstrap for the base image
# from Debian; podman-compose 1.6.0, the version tested, from PyPI into DIR (Debian 12's is
# 1.0.3).
# Usage: prepare.sh DIR
set -euo pipefail
dir=$1
need=()
command -v podman >/dev/null || need+=(podman runc)
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
command -v iptables >/dev/null || need+=(iptables)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "make test-image needs ${need[*]}: install them (Debian: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$dir/bin/podman-compose" ]; then
  echo "installing podman-compose 1.6.0 into $dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check podman-compose==1.6.0
fi
