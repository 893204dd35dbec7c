#!/usr/bin/env bash
# berth demo, end to end with no internet: build a small busybox image from Debian's busybox-static
# with umoci, serve it from a local docker-registry on a loopback port, start berthd, pull it with
# per-layer progress, list it, show its history; then stop everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_DIR=$PWD

bash scripts/setup.sh

WORK=$(mktemp -d /tmp/berth-demo.XXXXXX)
ROOT=$WORK/root
SOCK=$WORK/berth.sock
REGISTRY_PID=""
BERTHD_PID=""

cleanup() {
  set +e
  [ -n "$BERTHD_PID" ] && kill -TERM "$BERTHD_PID" 2>/dev/null && wait "$BERTHD_PID" 2>/dev/null
  [ -n "$REGISTRY_PID" ] && kill -TERM "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  # Anything berthd mounted under the demo root goes with it.
  grep -F " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
berth() { printf '$ berth %s\n' "$*"; "$REPO_DIR/dist/core/cli/main.js" -H "unix://$SOCK" "$@"; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

say "Building images from busybox-static with umoci (two layers: busybox, then a motd)"
OCI=$WORK/oci
umoci init --layout "$OCI"
umoci new --image "$OCI:busybox"
umoci unpack --image "$OCI:busybox" "$WORK/bundle" >/dev/null
mkdir -p "$WORK/bundle/rootfs/bin" "$WORK/bundle/rootfs/etc" "$WORK/bundle/rootfs/tmp"
cp /bin/busybox "$WORK/bundle/rootfs/bin/busybox"
for applet in sh ls cat echo true false sleep hostname id ps mount grep wc env uname date; do
  ln -sf busybox "$WORK/bundle/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$WORK/bundle/rootfs/etc/passwd"
umoci repack --image "$OCI:busybox" --history.created_by "COPY busybox-static /bin/" "$WORK/bundle"
umoci config --image "$OCI:busybox" --config.cmd sh --history.created_by 'CMD ["sh"]'
echo "Welcome to berth" > "$WORK/bundle/rootfs/etc/motd"
umoci repack --image "$OCI:busybox" --history.created_by "COPY motd /etc/motd" "$WORK/bundle"

say "Serving it from a local docker-registry"
PORT=$(free_port)
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/registry } }
http: { addr: 127.0.0.1:$PORT }
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:busybox" "docker://127.0.0.1:$PORT/demo/busybox:latest"
echo "registry on 127.0.0.1:$PORT holds demo/busybox:latest"

say "Starting berthd (root $ROOT, socket $SOCK)"
"$REPO_DIR/dist/core/kernel/berthd.js" --root "$ROOT" --socket "$SOCK" 2>"$WORK/berthd.log" &
BERTHD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$WORK/berthd.log"; exit 1; }

say "Pulling the image: each layer is downloaded, verified and committed"
berth pull "127.0.0.1:$PORT/demo/busybox"

say "Listing images"
berth images

say "The image's history: one row per layer or config change"
berth history "127.0.0.1:$PORT/demo/busybox"

say "Tagging, and pulling again (nothing to download)"
berth tag "127.0.0.1:$PORT/demo/busybox" demo:v1
berth pull "127.0.0.1:$PORT/demo/busybox"
berth images

say "Plugins and the store check"
berth plugins
berth system check

say "Removing the extra tag"
berth rmi demo:v1

say "Demo finished; stopping berthd and the registry"
