#!/usr/bin/env bash
# A Debian bookworm base image with Python 3.11, made with debootstrap and imported into podman,
# for build hosts that reach no image registry (where one is reachable, python:3.11-slim is the
# base and this script is not needed). Needs root, debootstrap and a Debian mirror
# (CSS_DEBIAN_MIRROR, default http://deb.debian.org/debian; a local mirror or apt cache works).
#
#   deploy/make-base.sh [IMAGE [PACKAGE...]]
#
# IMAGE defaults to localhost/css-base:bookworm; PACKAGEs are added to the base (the container
# test makes its PostgreSQL image from `deploy/make-base.sh localhost/css-postgres-base:bookworm
# postgresql-15`). Takes about a minute and a half; the image is about 150 MB.
set -euo pipefail
image=${1:-localhost/css-base:bookworm}
shift || true
mirror=${CSS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3-distutils: debootstrap does not resolve python3.11-venv's virtual python3.11-distutils.
packages=python3.11,python3.11-venv,python3-distutils
for p in "$@"; do packages+=",$p"; done

if [[ $(id -u) -ne 0 ]]; then
  echo "make-base.sh: debootstrap needs root (run it with sudo)" >&2
  exit 2
fi
for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "make-base.sh: $tool is absent (apt-get install $tool)" >&2; exit 2; }
done

root=$(mktemp -d /var/tmp/css-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# What a container never needs: package lists and caches, documentation, translations.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/tmp/*
# A package that made a PostgreSQL cluster at install time: the image's entrypoint makes its own.
rm -rf "$root"/var/lib/postgresql/*/main "$root"/etc/postgresql/*/main

tar -C "$root" --numeric-owner -c . |
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=si)B"
