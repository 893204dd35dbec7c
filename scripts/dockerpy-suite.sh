#!/usr/bin/env bash
# Runs docker-py's own integration suite (tests/integration of a docker-py source tree) against a
# private berthd from this checkout's dist/, or against a private dockerd for reference counts.
# Offline: busybox, alpine:3.10, alpine:latest and hello-world are all made from Debian's
# busybox-static with umoci, served from a loopback docker-registry that the daemon uses as its
# docker.io mirror. Not part of the CI suite (it needs a docker-py source tree).
#
#   scripts/dockerpy-suite.sh berthd|dockerd DOCKER_PY_SRC [pytest args...]
#   e.g. scripts/dockerpy-suite.sh berthd /tmp/docker-py tests/integration/api_exec_test.py -x
#
# BERTHD_JS runs another build of berthd (default: this checkout's dist). Needs python3-paramiko
# (tests/helpers.py imports it) and python3-pytest-timeout; run with PYTHON=/usr/bin/python3.
# HOLD=1 starts the daemon and waits instead of running pytest (its DOCKER_HOST is printed).
# Prints pytest's summary; the whole output and the daemon's log stay in $KEEP (default: a temp
# dir named at the end).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "$0")/.." && pwd)
ENGINE=${1:?usage: dockerpy-suite.sh berthd|dockerd DOCKER_PY_SRC [pytest args...]}
SRC=$(cd "${2:?docker-py source tree}" && pwd)
shift 2
[ $# -gt 0 ] || set -- tests/integration
PYTHON=${PYTHON:-python3}

WORK=$(mktemp -d /tmp/dps.XXXXXX)
KEEP=${KEEP:-$(mktemp -d /tmp/dockerpy-suite-out.XXXXXX)}
SOCK=$WORK/daemon.sock
REGISTRY_PID=""
DAEMON_PID=""

cleanup() {
  set +e
  if [ -n "$DAEMON_PID" ]; then
    # Containers outlive berthd by design (their monitors stay): remove them through the API first.
    for id in $(curl -fsS --unix-socket "$SOCK" 'http://d/containers/json?all=1' 2>/dev/null | node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>{for(const c of JSON.parse(s||"[]"))console.log(c.Id)})'); do
      curl -fsS --unix-socket "$SOCK" -X DELETE "http://d/containers/$id?force=1&v=1" >/dev/null 2>&1
    done
    kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 200); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  [ -n "$REGISTRY_PID" ] && kill -TERM "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  grep -F " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# ---- images ----
OCI=$WORK/oci
umoci init --layout "$OCI"
umoci new --image "$OCI:busybox"
umoci unpack --image "$OCI:busybox" "$WORK/bundle" >/dev/null
ROOTFS=$WORK/bundle/rootfs
mkdir -p "$ROOTFS"/{bin,etc,tmp,root,proc,sys,dev,var/run,var/opt}
chmod 1777 "$ROOTFS/tmp"
cp /bin/busybox "$ROOTFS/bin/busybox"
for applet in $(/bin/busybox --list); do [ -e "$ROOTFS/bin/$applet" ] || ln -s busybox "$ROOTFS/bin/$applet"; done
# alpine's own users that the suite names (exec as postgres)
printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:2:2:daemon:/sbin:/sbin/nologin\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$ROOTFS/etc/passwd"
printf 'root:x:0:root\ndaemon:x:2:root,bin,daemon\npostgres:x:70:\nnobody:x:65534:\n' > "$ROOTFS/etc/group"
umoci repack --image "$OCI:busybox" --history.created_by "COPY busybox-static /bin/" "$WORK/bundle"
umoci config --image "$OCI:busybox" --config.cmd sh --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
rm -rf "$WORK/bundle"
umoci tag --image "$OCI:busybox" alpine
umoci unpack --image "$OCI:alpine" "$WORK/bundle" >/dev/null
echo 3.10.9 > "$WORK/bundle/rootfs/etc/alpine-release"
umoci repack --image "$OCI:alpine" --history.created_by "COPY alpine-release /etc/" "$WORK/bundle"
umoci config --image "$OCI:alpine" --config.cmd /bin/sh
rm -rf "$WORK/bundle"
umoci tag --image "$OCI:busybox" hello
umoci unpack --image "$OCI:hello" "$WORK/bundle" >/dev/null
printf '#!/bin/sh\necho\necho "Hello from Docker!"\n' > "$WORK/bundle/rootfs/hello"
chmod 755 "$WORK/bundle/rootfs/hello"
umoci repack --image "$OCI:hello" --history.created_by "COPY hello /" "$WORK/bundle"
umoci config --image "$OCI:hello" --config.cmd /hello
umoci gc --layout "$OCI"

PORT=$(free_port)
mkdir -p "$WORK/registry"
cat > "$WORK/registry.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$PORT }
YAML
docker-registry serve "$WORK/registry.yml" >"$KEEP/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
push() { skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:$1" "docker://127.0.0.1:$PORT/library/$2"; }
push busybox busybox:latest
push alpine alpine:3.10
push alpine alpine:latest
push hello hello-world:latest

# ---- daemon ----
if [ "$ENGINE" = berthd ]; then
  cat > "$WORK/berth.config.json" <<JSON
{ "registries": { "docker.io": { "mirrors": ["127.0.0.1:$PORT"] } } }
JSON
  (cd "$WORK" && exec "${BERTHD_JS:-$REPO_DIR/dist/core/daemon/berthd.js}" --root "$WORK/root" --socket "$SOCK" --config "$WORK/berth.config.json") >"$KEEP/daemon.log" 2>&1 &
  DAEMON_PID=$!
elif [ "$ENGINE" = dockerd ]; then
  echo '{}' > "$WORK/daemon.json"
  DOCKER_CONFIG=$WORK/cfg dockerd --config-file "$WORK/daemon.json" --data-root "$WORK/data" --exec-root "$WORK/exec" \
    --pidfile "$WORK/docker.pid" -H "unix://$SOCK" --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
    --storage-driver overlay2 --registry-mirror "http://127.0.0.1:$PORT" --insecure-registry "127.0.0.1:$PORT" >"$KEEP/daemon.log" 2>&1 &
  DAEMON_PID=$!
else
  echo "unknown engine $ENGINE (berthd or dockerd)" >&2
  exit 2
fi
for _ in $(seq 400); do curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS --unix-socket "$SOCK" http://d/_ping >/dev/null || { tail -20 "$KEEP/daemon.log"; exit 1; }
for ref in busybox:latest alpine:3.10 alpine:latest; do
  curl -fsS --unix-socket "$SOCK" -X POST "http://d/v1.41/images/create?fromImage=${ref%%:*}&tag=${ref#*:}" >/dev/null
done

# ---- suite ----
# docker-py keeps contexts beside the config file it finds (in the working directory without one).
mkdir -p "$WORK/cfg" && echo '{}' > "$WORK/cfg/config.json"
if [ -n "${HOLD:-}" ]; then
  # Keep the daemon up for running single tests by hand; ends with this script (Ctrl-C or kill).
  echo "DOCKER_HOST=unix://$SOCK DOCKER_TEST_API_VERSION=1.41 (pid $DAEMON_PID)"
  wait "$DAEMON_PID"
  exit
fi
cd "$SRC"
set +e
DOCKER_HOST=unix://$SOCK DOCKER_TEST_API_VERSION=1.41 DOCKER_CONFIG=$WORK/cfg PYTHONDONTWRITEBYTECODE=1 \
  timeout "${SUITE_TIMEOUT:-3600}" "$PYTHON" -m pytest -p no:cacheprovider -v -rfEs --timeout="${TEST_TIMEOUT:-180}" "$@" >"$KEEP/pytest.txt" 2>&1
set -e
grep -E '^(FAILED|ERROR) ' "$KEEP/pytest.txt" | sort > "$KEEP/failures.txt" || true
tail -1 "$KEEP/pytest.txt"
echo "output in $KEEP (pytest.txt, failures.txt, daemon.log)"
