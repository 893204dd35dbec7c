#!/usr/bin/env bash
# Installs what berth, its demo and its tests need on Debian 12 (as root), then builds berth.
# Usage: bash scripts/setup.sh [EXTRA_DEBIAN_PACKAGE...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(docker-registry umoci skopeo busybox-static runc apache2-utils openssl gcc libc6-dev iproute2 procps curl containernetworking-plugins docker-compose)
# Extra packages named on the command line (CI adds docker.io for the docker 20.10 CLI tests).
PACKAGES+=("$@")
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry's package starts a system instance on :5000; berth starts its own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run build
fi
