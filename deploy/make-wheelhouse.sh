#!/usr/bin/env bash
# The air-gapped install, step 1 (on a machine that reaches PyPI): download every wheel the image
# installs into a folder, with a SHA256SUMS list. Carry the folder with the source tree to the
# build host; the Dockerfile installs from it with `pip install --no-index --find-links`.
#
#   deploy/make-wheelhouse.sh [DIR]            (default DIR: deploy/wheelhouse, git-ignored)
#
# Runs `$PYTHON -m pip download` (PYTHON default python3; it needs pip: PYTHON=.venv/bin/python).
# Wheels only (nothing is compiled on the build host), for the image's platform whatever this
# machine is: CPython 3.11 on x86-64 Linux with glibc 2.36 (Debian bookworm; python:3.11-slim is
# bookworm too). Override with CSS_WHEEL_PLATFORM, e.g. manylinux_2_36_aarch64 for ARM servers.
# PyPI's torch wheel for Linux pulls several GB of CUDA libraries; for a CPU-only image add
# PyTorch's CPU index (its torch==2.13.0+cpu then wins: a local version sorts above 2.13.0):
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu deploy/make-wheelhouse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-deploy/wheelhouse}
platform=${CSS_WHEEL_PLATFORM:-manylinux_2_36_x86_64}
python=${PYTHON:-python3}

# pip takes a wheel only for a platform tag named here: name every glibc the target runs
# (manylinux_2_5 .. its own) and the legacy aliases.
arch=${platform#manylinux_2_*_}
glibc=${platform#manylinux_2_}
glibc=${glibc%%_*}
platforms=(--platform "manylinux1_$arch" --platform "manylinux2010_$arch" --platform "manylinux2014_$arch")
for ((minor = 5; minor <= glibc; minor++)); do
  platforms+=(--platform "manylinux_2_${minor}_$arch")
done

mkdir -p "$out"
"$python" -m pip download --disable-pip-version-check -q \
  --only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp --abi cp311 \
  -r requirements.txt -d "$out"
(cd "$out" && sha256sum -- *.whl >SHA256SUMS)
echo "$(ls "$out"/*.whl | wc -l) wheels, $(du -sh "$out" | cut -f1), in $out (SHA256SUMS beside them)"
