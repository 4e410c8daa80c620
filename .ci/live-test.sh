#!/bin/sh
# CI step for live audio input: cpal needs the ALSA headers, and the test captures through a
# virtual ALSA `file` device that tests/it/live.rs configures itself (no sound card needed).
# CI=true makes a missing virtual device a failure instead of a skip.
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends libasound2-dev pkg-config
export CI=true
cargo build --features live
cargo test --features live --test it live::
# Following a recording fed at real pace through the virtual capture device.
cargo test --features live --test it live_follow::
# The rest of the suite with the live code compiled in.
cargo test --features live --lib audio
