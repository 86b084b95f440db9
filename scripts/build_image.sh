#!/usr/bin/env bash
# Build the image without Docker or a registry: debootstrap a Debian bookworm base, import it into
# buildah's local storage, build the Dockerfile on it, tag it dfcil:<pyproject version>; print the
# size and the build time. Runs as root (debootstrap and buildah's chroot isolation need it); installs
# buildah and debootstrap with apt-get when they are missing.
# Environment: IMAGE (default dfcil:<version>), STORAGE_DRIVER (default vfs: works on any filesystem;
# overlay was no faster here, docs/image.md), DEBIAN_MIRROR,
# REBUILD_BASE=1 (debootstrap again although the base image exists), LOG_DIR (default
# /var/tmp/dfcil-image: debootstrap.log, build.log with seconds since the start, http.log).
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "build_image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root: debootstrap and buildah's chroot isolation run as root (try sudo)"
# As root, buildah's chroot isolation runs each step in new mount and UTS namespaces.
unshare --mount --uts true 2>/dev/null ||
  die "cannot create mount/UTS namespaces here (unshare --mount --uts failed), so buildah cannot run the build's steps"
missing=()
for tool in buildah debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "needs ${missing[*]} and has no apt-get to install them"
  echo "build_image: installing ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null 2>&1 ||
    die "could not install ${missing[*]} with apt-get"
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
IMAGE=${IMAGE:-dfcil:$version}
BASE=localhost/debian-minbase:bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs} BUILDAH_ISOLATION=chroot
LOG_DIR=${LOG_DIR:-/var/tmp/dfcil-image}
mkdir -p "$LOG_DIR"
work=$(mktemp -d /var/tmp/dfcil-image-work.XXXXXX)
server=""
cleanup() { [ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

if [ "${REBUILD_BASE:-0}" = 1 ] || ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  t0=$SECONDS
  debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed: $(tail -1 "$LOG_DIR/debootstrap.log")"
  # Sources as in Debian's official bookworm image (point releases and security updates); no
  # downloaded packages or indexes in the base (the Dockerfile runs apt-get update).
  rm -f "$work/rootfs/etc/apt/sources.list" "$work/rootfs/var/cache/apt/archives/"*.deb
  rm -rf "$work/rootfs/var/lib/apt/lists/"*
  cat >"$work/rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  ctr=$(buildah from scratch)
  cp -a "$work/rootfs/." "$(buildah mount "$ctr")/"
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  buildah commit -q --rm "$ctr" "$BASE" >/dev/null
  rm -rf "$work/rootfs"
  echo "build_image: base $BASE (debootstrap --variant=minbase bookworm) made in $((SECONDS - t0)) s"
fi

# pip's settings on this machine (its environment variables first, then its config files) go to the
# build: local folders and file:// indexes are not visible inside it, so they are served on loopback
# (the build's steps share the host's network); a CA bundle goes in as a build secret. Neither
# stays in the image.
pip_config=$(python3 -m pip config list 2>/dev/null || true)
pip_setting() { sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" <<<"$pip_config" | head -1; }
mkdir "$work/serve"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || true)
served=0 url=""
# Sets $url to an address of pip location $1 the build can reach ($2: index or links); a local one
# is linked under $work/serve.
reachable() {
  local loc=${1#file://}
  url=$1
  if [ "$loc" = "$1" ] && [[ "$1" == *://* ]]; then return; fi
  [[ "$loc" == /* ]] || loc=$PWD/$loc
  served=$((served + 1))
  if [ "$2" = index ]; then  # a PEP 503 index's pages link to files beside simple/: serve its parent
    ln -s "$(dirname "$loc")" "$work/serve/m$served"
    url="http://127.0.0.1:$port/m$served/$(basename "$loc")/"
  else
    ln -s "$loc" "$work/serve/m$served"
    url="http://127.0.0.1:$port/m$served/"
  fi
}
build_args=(--build-arg "BASE_IMAGE=$BASE")
index=$(pip_setting index-url) extra=() links=()
if [ -n "$index" ]; then reachable "$index" index; build_args+=(--build-arg "PIP_INDEX_URL=$url"); fi
for u in $(pip_setting extra-index-url); do reachable "$u" index; extra+=("$url"); done
for u in $(pip_setting find-links); do reachable "$u" links; links+=("$url"); done
[ ${#extra[@]} -eq 0 ] || build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=${extra[*]}")
[ ${#links[@]} -eq 0 ] || build_args+=(--build-arg "PIP_FIND_LINKS=${links[*]}")
cert=$(pip_setting cert)
[ -z "$cert" ] || build_args+=(--secret "id=pip-cert,src=$cert")
if [ "$served" -gt 0 ]; then
  python3 -m http.server --bind 127.0.0.1 --directory "$work/serve" "$port" >"$LOG_DIR/http.log" 2>&1 &
  server=$!
  for _ in {1..50}; do (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fi

old=$(buildah images --noheading --format '{{.ID}}' "$IMAGE" 2>/dev/null || true)
echo "build_image: building $IMAGE on $BASE (STORAGE_DRIVER=$STORAGE_DRIVER)"
t0=$SECONDS
# --layers=false: each stage is committed as one layer (vfs stores every layer as a full copy);
# --force-rm: a failed build leaves no working containers behind either.
buildah build --isolation chroot --layers=false --force-rm "${build_args[@]}" -t "$IMAGE" . 2>&1 |
  while IFS= read -r line; do printf '%4d %s\n' $((SECONDS - t0)) "$line"; done >"$LOG_DIR/build.log" || {
  tail -20 "$LOG_DIR/build.log" >&2; die "buildah build failed (the end of $LOG_DIR/build.log is above)"; }
seconds=$((SECONDS - t0))
new=$(buildah images --noheading --format '{{.ID}}' "$IMAGE")
# The image this tag named before is dead weight now (several GB on vfs).
if [ -n "$old" ] && [ "$old" != "$new" ]; then buildah rmi "$old" >/dev/null 2>&1 || true; fi
size=$(buildah images --noheading --format '{{.Size}}' "$IMAGE")
echo "build_image: $IMAGE built in $((seconds / 60)) min $((seconds % 60)) s; size $size (uncompressed)"
