#!/usr/bin/env bash
# berth demo, end to end with no internet: build a small busybox image from Debian's busybox-static
# with umoci, serve it from a local docker-registry on a loopback port, start berthd, pull it with
# per-layer progress, list it, show its history, run containers from it (each writes into its own
# layer; the image stays read-only), and show a second image sharing the base layer stored once;
# then builds, networks and a docker-compose project. Then it stops everything it started.
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
berth() { printf '$ berth %s\n' "$*" >&2; "$REPO_DIR/dist/core/cli/main.js" -H "unix://$SOCK" "$@"; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

say "Building images from busybox-static with umoci (two layers: busybox, then a motd)"
OCI=$WORK/oci
umoci init --layout "$OCI"
umoci new --image "$OCI:busybox"
umoci unpack --image "$OCI:busybox" "$WORK/bundle" >/dev/null
mkdir -p "$WORK/bundle/rootfs/bin" "$WORK/bundle/rootfs/etc" "$WORK/bundle/rootfs/tmp"
cp /bin/busybox "$WORK/bundle/rootfs/bin/busybox"
for applet in sh ls cat echo true false sleep hostname id ps mount grep wc env uname date tr rm mkdir touch head tail sed awk cp mv ln chmod seq wget tar printf nc; do
  ln -sf busybox "$WORK/bundle/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$WORK/bundle/rootfs/etc/passwd"
umoci repack --image "$OCI:busybox" --history.created_by "COPY busybox-static /bin/" "$WORK/bundle"
umoci config --image "$OCI:busybox" --config.cmd sh --history.created_by 'CMD ["sh"]'
# repack diffs against the image the bundle was unpacked from: unpack again for each new layer.
rm -rf "$WORK/bundle" && umoci unpack --image "$OCI:busybox" "$WORK/bundle" >/dev/null
echo "Welcome to berth" > "$WORK/bundle/rootfs/etc/motd"
umoci repack --image "$OCI:busybox" --history.created_by "COPY motd /etc/motd" "$WORK/bundle"
# A second image on the same base: the busybox layer is shared, only the app layer differs.
umoci tag --image "$OCI:busybox" app
umoci unpack --image "$OCI:app" "$WORK/app" >/dev/null
printf '#!/bin/sh\necho "hello from the app layer"\n' > "$WORK/app/rootfs/bin/app"
chmod +x "$WORK/app/rootfs/bin/app"
umoci repack --image "$OCI:app" --history.created_by "COPY app /bin/app" "$WORK/app"
umoci config --image "$OCI:app" --config.cmd /bin/app --history.created_by 'CMD ["/bin/app"]'

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
skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:app" "docker://127.0.0.1:$PORT/demo/app:latest"
echo "registry on 127.0.0.1:$PORT holds demo/busybox:latest and demo/app:latest"

say "Starting berthd (root $ROOT, socket $SOCK)"
"$REPO_DIR/dist/core/daemon/berthd.js" --root "$ROOT" --socket "$SOCK" 2>"$WORK/berthd.log" &
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

say "Running a container: the image's Cmd, the container's own hostname, isolated pids"
IMG=127.0.0.1:$PORT/demo/busybox
berth run --rm "$IMG" sh -c 'cat /etc/motd; echo "hostname: $(hostname)"; echo "processes:"; ps'

say "A container writes into its own layer; the image and other containers do not see it"
berth run --name writer "$IMG" sh -c 'echo "written by writer" > /note; rm /etc/motd'
berth diff writer
echo "--- a new container of the same image:"
berth run --rm "$IMG" sh -c 'cat /note 2>&1; cat /etc/motd'
echo "--- the writer's filesystem, exported:"
berth export writer | tar -xO note
berth rm writer

say "A detached container, its logs, and exec into it"
berth run -d --name ticker "$IMG" sh -c 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'
sleep 1
berth ps
berth logs --tail 3 ticker
berth exec ticker sh -c 'echo "exec sees pid 1 as: $(cat /proc/1/cmdline | tr "\0" " ")"'
berth stop -t 1 ticker
berth rm ticker

say "A second image on the same base: the shared layer is downloaded and stored once"
berth pull "127.0.0.1:$PORT/demo/app"
berth run --rm "127.0.0.1:$PORT/demo/app"
berth system df -v

say "Inheritance: a jdk-like image built on the base, a tomcat-like image built on that"
CTX=$WORK/build
mkdir -p "$CTX/jdk" "$CTX/tomcat"
cat > "$CTX/jdk/Dockerfile" <<DOCKERFILE
FROM $IMG
RUN mkdir -p /opt/jdk/bin && echo 'openjdk version "21" (demo)' > /opt/jdk/release
ENV JAVA_HOME=/opt/jdk
DOCKERFILE
printf '#!/bin/sh\necho "tomcat (demo) running on $(cat $JAVA_HOME/release)"\n' > "$CTX/tomcat/catalina.sh"
cat > "$CTX/tomcat/Dockerfile" <<'DOCKERFILE'
FROM demo/jdk:21
COPY catalina.sh /opt/tomcat/bin/catalina.sh
RUN chmod +x /opt/tomcat/bin/catalina.sh
CMD ["/opt/tomcat/bin/catalina.sh"]
DOCKERFILE
berth build -t demo/jdk:21 "$CTX/jdk"
berth build -t demo/tomcat:10 "$CTX/tomcat"
berth run --rm demo/tomcat:10
berth history demo/tomcat:10
echo "--- a rebuild with nothing changed comes from the cache:"
berth build -q -t demo/tomcat:10 "$CTX/tomcat"
echo "--- the base, jdk and tomcat layers are each stored once, shared by the images above them:"
berth system df -v

say "Plugins and the store check"
berth plugins
berth system check

say "Removing the extra tag"
berth rmi demo:v1

say "A web server on the default bridge, published on a loopback port"
WEB_PORT=$(free_port)
berth run -d --name web -p "127.0.0.1:$WEB_PORT:80" "$IMG" sh -c 'mkdir -p /www && echo "hello over a published port" > /www/index.html && exec busybox httpd -f -p 80 -h /www'
berth port web
berth ps
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$WEB_PORT/" 2>/dev/null && break; sleep 0.1; done
berth rm -f web

say "docker-compose drives berthd too: a web server and a client on the project's network"
COMPOSE_DIR=$WORK/compose
mkdir -p "$COMPOSE_DIR"
cat > "$COMPOSE_DIR/docker-compose.yml" <<COMPOSE
version: "2.4"
services:
  web:
    image: $IMG
    command: ["sh", "-c", "mkdir -p /www && echo hello from the web service > /www/index.html && exec busybox httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
  client:
    image: $IMG
    command: ["sleep", "3600"]
    depends_on: [web]
    stop_grace_period: 1s
COMPOSE
compose() { printf '$ docker-compose %s\n' "$*" >&2; DOCKER_HOST="unix://$SOCK" docker-compose --project-directory "$COMPOSE_DIR" -p demo "$@"; }
compose up -d
compose ps
echo "--- the client reaches the web service by its name:"
for _ in $(seq 50); do compose exec -T client sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | busybox nc web 80' 2>/dev/null | tail -1 | grep . && break; sleep 0.2; done
compose down -v

say "Demo finished; stopping berthd and the registry"
