#!/usr/bin/env bash
# Build a systemd test-host image for one Debian release without any registry:
# debootstrap a minbase root filesystem, add the controller's extra CA certificates,
# and `docker import` it. The image is tagged with a hash of its recipe (this script,
# the release and the CA certificates), so an up-to-date image is reused and a changed
# recipe triggers a rebuild.
#
# Usage: scripts/build-test-image.sh debian13|debian12 [--force]
set -euo pipefail

SUPPORTED="debian12 debian13"
distro="${1:-}"
force="${2:-}"
case "$distro" in
  debian12) suite=bookworm ;;
  debian13) suite=trixie ;;
  *)
    echo "error: unknown distro '${distro}'; supported: ${SUPPORTED}" >&2
    exit 2 ;;
esac

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security_mirror="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
ca_dir="${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
repo="${TEST_IMAGE_REPO:-platform-testhost}"
packages="systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,curl,gnupg,openssh-client"

# The recipe: everything that changes the image's content.
recipe_hash=$(
  {
    cat "$0"
    echo "$suite $mirror $security_mirror $packages"
    if [ -d "$ca_dir" ]; then find "$ca_dir" -type f -name '*.crt' -print0 | sort -z | xargs -0r cat; fi
  } | sha256sum | cut -c1-12
)
image="${repo}:${distro}"
hashed="${repo}:${distro}-${recipe_hash}"

if [ "$force" != "--force" ] && docker image inspect "$hashed" >/dev/null 2>&1; then
  docker tag "$hashed" "$image"
  echo "test image ${image} is up to date (${hashed})"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "error: debootstrap is missing; install it with: apt-get install -y debootstrap" >&2
  exit 1
}

workdir=$(mktemp -d /var/tmp/testhost.XXXXXX)
trap 'rm -rf "$workdir"' EXIT
rootfs="$workdir/rootfs"
start=$(date +%s)
echo "building ${image} from ${suite} (recipe ${recipe_hash}) ..."
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 || {
  tail -20 "$workdir/debootstrap.log" >&2
  echo "error: debootstrap of ${suite} failed" >&2
  exit 1
}

# A host installed by Debian's installer has the updates and security suites.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${mirror}
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security_mirror}
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES

# Like Debian's installer with a network mirror: the security updates are in.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod +x "$rootfs/usr/sbin/policy-rc.d"
mount -t proc proc "$rootfs/proc"
trap 'umount "$rootfs/proc" 2>/dev/null || true; rm -rf "$workdir"' EXIT
if ! chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade' \
    >"$workdir/upgrade.log" 2>&1; then
  tail -20 "$workdir/upgrade.log" >&2
  echo "error: applying updates to the ${suite} image failed" >&2
  exit 1
fi
umount "$rootfs/proc"
rm -f "$rootfs/usr/sbin/policy-rc.d"

# Extra CA certificates of the controller (TLS-intercepting proxies).
if [ -d "$ca_dir" ]; then
  find "$ca_dir" -type f -name '*.crt' -exec cp {} "$rootfs/usr/local/share/ca-certificates/" \;
  chroot "$rootfs" update-ca-certificates >/dev/null
fi

# A container has no consoles or udev to wait for.
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-firstboot.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
echo "platform-testhost" >"$rootfs/etc/hostname"
: >"$rootfs/etc/machine-id"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
# Like a fresh install whose lists were never fetched: no apt client may take
# the empty lists for a fresh cache.
mkdir -p "$rootfs/var/lib/apt/lists/partial"
touch -d @0 "$rootfs/var/lib/apt/lists"

tar -C "$rootfs" -c . | docker import \
  -c 'CMD ["/lib/systemd/systemd"]' \
  -c 'ENV container=docker' \
  -c "LABEL org.platform.recipe=${recipe_hash}" \
  - "$hashed" >/dev/null
docker tag "$hashed" "$image"
# Older recipes of this distro are superseded.
docker images --format '{{.Repository}}:{{.Tag}}' "$repo" | grep -E "^${repo}:${distro}-[0-9a-f]{12}\$" \
  | grep -vx "$hashed" | xargs -r docker rmi >/dev/null 2>&1 || true
echo "built ${image} (${hashed}) in $(( $(date +%s) - start ))s"
exit 0
