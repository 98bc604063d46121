#!/usr/bin/env bash
# What the compose test (and docker/compose.test.yaml) needs on a Debian machine that
# reaches Debian's archive and PyPI but no image registry: Docker's engine and Compose v2,
# a Debian bookworm base image made with debootstrap, and the wheelhouse docker/wheels.
# Each step is skipped when its result is already there. Run as root:
#
#   docker/test/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${TUNER_BASE_IMAGE:-tuner-base:bookworm}
say() { echo "prepare: $*"; }

# 1. Debian's Docker engine, and debootstrap.
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing docker.io and debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

# 2. Compose v2 and buildx, as CLI plugins. Bookworm packages only Compose v1; trixie's
#    docker-compose and docker-buildx packages are single Go binaries that need nothing
#    newer than bookworm's libc. They are unpacked into the plugin folder, so apt's own
#    sources stay bookworm's.
plugins=/usr/local/lib/docker/cli-plugins
if ! docker compose version >/dev/null 2>&1 || ! docker buildx version >/dev/null 2>&1; then
  say "installing the Compose v2 and buildx plugins (Debian trixie's packages)"
  tmp=$(mktemp -d)
  mkdir -p "$tmp/lists/partial" "$plugins"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$tmp/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$tmp/lists")
  apt-get "${apt_opts[@]}" update -qq
  (cd "$tmp" && apt-get "${apt_opts[@]}" download docker-compose docker-buildx 2>/dev/null)
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/root"; done
  install -m 755 "$tmp/root/usr/libexec/docker/cli-plugins/"docker-{compose,buildx} "$plugins/"
  rm -rf "$tmp"
fi

# 3. The engine, started by hand where nothing else starts it (no systemd here).
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  (dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 /var/log/dockerd.log; exit 1; }
fi

# 4. The base image: Debian bookworm with Python 3.11 (as on the host), from debootstrap.
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  say "making the base image $BASE with debootstrap"
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi

# 5. The wheelhouse, with this machine's pip configuration (containers do not reach
#    PyPI here). pip resolves environment markers for the Python it runs on: the image's
#    Python is 3.11.2, and below 3.11.3 redis needs async-timeout, which a newer host
#    Python does not, so it is named. It is made once per pyproject.toml in a cache
#    outside the checkout and copied into docker/wheels: the same bytes in every clone,
#    so Docker's cached layer of dependencies is reused (wheels pip builds are not
#    byte-identical from one build to the next).
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
cache=${TUNER_WHEELHOUSE_CACHE:-/var/cache/tuner-wheelhouse}/$want
if [ ! -e "$cache/.complete" ]; then
  say "making the wheelhouse in $cache"
  rm -rf "$cache" && mkdir -p "$cache"
  python3 -m pip wheel -q -w "$cache" ".[postgres,redis,grpc]" "async-timeout>=4.0.3" 2>&1 \
    | grep -v "is ignored" || true
  rm -f "$cache"/tuner-*.whl   # the image installs tuner from the source tree
  touch "$cache/.complete"
fi
if [ "$(cat docker/wheels/.pyproject.sha256 2>/dev/null)" != "$want" ]; then
  find docker/wheels -name '*.whl' -delete
  cp -l "$cache"/*.whl docker/wheels/ 2>/dev/null || cp "$cache"/*.whl docker/wheels/
  echo "$want" >docker/wheels/.pyproject.sha256
fi
say "ready: $(docker compose version), base $BASE, $(find docker/wheels -name '*.whl' | wc -l) wheels"
