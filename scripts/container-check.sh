#!/usr/bin/env bash
# Builds the Docker image with Debian's podman (no Docker engine here), runs it, and checks /readyz and
# one embedding and one classification through the published port. Not part of CI (it takes minutes and a Debian mirror).
#
# No registry is reachable, so the two base images the Dockerfile names are made locally, once:
#   debian:bookworm-slim  from debootstrap --variant=minbase
#   swift:6.3-bookworm    the same plus the build packages and this machine's /opt/swift toolchain
#                         (and its mirror of the Swift packages, since GitHub is not reachable either)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-18080}"
WORK="${CONTAINER_WORK:-/var/tmp/bootmae-container}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$WORK"

source scripts/lib/apt.sh
apt_install --with-recommends container-check podman buildah runc debootstrap

# crun fails on these machines (cgroup hybrid, no CAP_SYS_RESOURCE): use runc, cgroupfs, low ulimits.
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"

if ! podman image exists debian:bookworm-slim; then
  echo "container-check: making debian:bookworm-slim with debootstrap" >&2
  rm -rf "$WORK/rootfs" && debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >/dev/null
  tar -C "$WORK/rootfs" -c . | podman import - debian:bookworm-slim >/dev/null
fi
if ! podman image exists swift:6.3-bookworm; then
  echo "container-check: making swift:6.3-bookworm from /opt/swift" >&2
  rm -rf "$WORK/swiftfs" && debootstrap --variant=minbase \
    --include=binutils,libc6-dev,libgcc-12-dev,libstdc++-12-dev,libcurl4-openssl-dev,libxml2-dev,libedit2,libsqlite3-0,libncurses6,libz3-4,pkg-config,tzdata,zlib1g-dev,git,ca-certificates \
    bookworm "$WORK/swiftfs" "$MIRROR" >/dev/null
  mkdir -p "$WORK/swiftfs/opt" "$WORK/swiftfs/opt/swift-packages/apple"
  cp -a /opt/swift "$WORK/swiftfs/opt/swift"
  for pkg in swift-argument-parser swift-log; do cp -a "/opt/swift-packages/apple/$pkg.git" "$WORK/swiftfs/opt/swift-packages/apple/"; done
  printf '[url "/opt/swift-packages/"]\n\tinsteadOf = https://github.com/\n' > "$WORK/swiftfs/etc/gitconfig"
  ln -sf /opt/swift/usr/bin/swift "$WORK/swiftfs/usr/local/bin/swift"
  for tool in swift-build swift-package swiftc clang; do ln -sf "/opt/swift/usr/bin/$tool" "$WORK/swiftfs/usr/local/bin/$tool"; done
  tar -C "$WORK/swiftfs" -c . | podman import --change 'ENV PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - swift:6.3-bookworm >/dev/null
fi

echo "container-check: building the image" >&2
start=$(date +%s)
# Docker format: OCI images have no HEALTHCHECK field, and podman drops the instruction without it.
podman build --pull=never --format docker -t bootmae-serve . >&2
echo "container-check: built in $(( $(date +%s) - start )) s; size $(podman image inspect bootmae-serve --format '{{.Size}}') bytes" >&2

name="bootmae-check-$$"
podman run -d --rm --name "$name" -p "127.0.0.1:$PORT:8080" bootmae-serve >/dev/null
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz"; echo
body=$(printf '{"input": "%s"}' "$(base64 -w0 Tests/Fixtures/images/gray28.png)")
curl -fsS -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$PORT/v1/embeddings" | head -c 200; echo
# Labels from the shipped classifier, as the README's curl asks for them.
curl -fsS -H 'Content-Type: image/png' --data-binary @Tests/Fixtures/fmnist/test00000-ankle-boot.png \
     "http://127.0.0.1:$PORT/v1/classifications?model=bootmae-vit-tiny-fmnist-cls&top_k=3"; echo
# The image's HEALTHCHECK (bootmae-serve --healthcheck inside the container) and its non-root user.
podman healthcheck run "$name" || { echo "container-check: HEALTHCHECK failed" >&2; exit 1; }
echo "container-check: HEALTHCHECK passes" >&2
uid=$(podman exec "$name" id -u)
[[ $uid != 0 ]] || { echo "container-check: the server runs as root" >&2; exit 1; }
echo "container-check: runs as uid $uid" >&2
stop_start=$(date +%s)
podman stop -t 15 "$name" >/dev/null
echo "container-check: stopped in $(( $(date +%s) - stop_start )) s (SIGTERM handled by PID 1)" >&2
echo "container-check: OK" >&2
