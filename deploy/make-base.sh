#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, made with debootstrap and imported into podman,
# for build hosts that reach no image registry (where one is reachable, python:3.11-slim is the
# base and this script is not needed). Needs root, debootstrap and a Debian mirror
# (CSS_DEBIAN_MIRROR, default http://deb.debian.org/debian; a local mirror or apt cache works).
#
#   deploy/make-base.sh [IMAGE]        (default IMAGE: localhost/css-base:bookworm)
#
# Takes two to three minutes (most of it downloading); the image is about 130 MB.
set -euo pipefail
image=${1:-localhost/css-base:bookworm}
mirror=${CSS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-distutils: debootstrap does not resolve python3.11-venv's virtual python3.11-distutils.
packages=python3.11,python3.11-venv,python3-distutils

if [[ $(id -u) -ne 0 ]]; then
  echo "make-base.sh: debootstrap needs root (run it with sudo)" >&2
  exit 2
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "make-base.sh: $tool is absent (apt-get install $tool)" >&2; exit 2; }
done

root=$(mktemp -d /var/tmp/css-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
if ! debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >/dev/null 2>&1; then
  echo "make-base.sh: debootstrap failed; the end of its log:" >&2
  tail -20 "$root/debootstrap/debootstrap.log" >&2 || true
  exit 1
fi
# What a container never needs: package lists and caches, documentation, translations.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/tmp/*

tar -C "$root" --numeric-owner -c . |
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=si)B"
