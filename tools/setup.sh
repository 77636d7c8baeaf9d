#!/usr/bin/env bash
# What a fresh machine (Rust, Python 3.11, Node.js, gcc) lacks: from Debian's packages CMake,
# with which the opus crate builds libopus, ffmpeg, the independent decoder of the tests, and
# ShellCheck, which tests/bootstrap.rs runs on the image's entry point; then the official
# openai SDKs that tests/sdk.rs runs against `serve`, pinned in tools/sdk and installed inside
# it. Installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    echo "installing ${missing[*]} from Debian's packages" >&2
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        $sudo apt-get update >/dev/null
        $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    }
fi

sdk=tools/sdk
if ! "$sdk/.venv/bin/python" -c "import openai" 2>/dev/null; then
    echo "installing the openai Python SDK into $sdk/.venv" >&2
    python3 -m venv "$sdk/.venv"
    "$sdk/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$sdk/requirements.txt"
fi
if [ ! -d "$sdk/node_modules/openai" ]; then
    echo "installing the openai Node SDK into $sdk/node_modules" >&2
    npm ci --prefix "$sdk" --no-audit --no-fund --silent
fi
