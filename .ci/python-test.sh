#!/usr/bin/env bash
# CI step for the Python package (python/): build the wheel with the README's command
# (`pip install ./python`) into a fresh virtualenv and run its tests against the release CLI.
# The binding crate is linted by the workspace clippy step of .ci/run. CARGO_TARGET_DIR is the
# repository's target/, so most of the dependencies come from the release build before this
# step (the soak test's) instead of being built again.
# Needs: a release build of the CLI (target/release/scorefollow), a python3 (>= 3.9) with venv,
# network to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
export CARGO_TARGET_DIR="$PWD/target"

venv="$(mktemp -d)/venv"
if ! python3 -m venv "$venv" 2>/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q numpy pytest
t1=$(date +%s)
echo "-- pip install ./python (maturin, release profile)"
"$venv/bin/pip" install ./python
t2=$(date +%s)
echo "-- pytest python/tests"
SCOREFOLLOW_BIN="$PWD/target/release/scorefollow" SCOREFOLLOW_REQUIRE_CLI=1 \
  "$venv/bin/pytest" -q python/tests
t3=$(date +%s)
echo "python package: venv $((t1 - t0)) s, wheel $((t2 - t1)) s, tests $((t3 - t2)) s, total $((t3 - t0)) s"
rm -rf "$(dirname "$venv")"
