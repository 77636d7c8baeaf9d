#!/usr/bin/env bash
# What a fresh machine (Rust, Python 3.11, gcc) lacks, from Debian's packages: CMake, with which
# the opus crate builds libopus, and ffmpeg, the independent decoder of tests/audio.rs.
# Installs nothing that is already there.
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
((${#missing[@]})) || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "installing ${missing[*]} from Debian's packages" >&2
$sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
