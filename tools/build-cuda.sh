#!/usr/bin/env bash
# Builds the CUDA binary (`--features cuda`) on a machine with no GPU and no system CUDA, the
# way the Dockerfile's build stage does. The binary loads CUDA's libraries (libcuda from the
# driver, cuBLAS, cuRAND, NVRTC) at run time, so the same file also runs on CPU-only hosts,
# where `CHATTERBOX_DEVICE=auto` falls back to the CPU.
#
#   tools/build-cuda.sh            # -> $CARGO_TARGET_DIR/release/chatterbox-worker (path printed)
#
# nvcc: the one on PATH (or in $CUDA_HOME/bin) when there is one, as in an nvidia/cuda devel
# image; otherwise the five build-only CUDA 13.0 wheels from PyPI (nvcc, nvvm, crt, runtime,
# cccl; the cu12 wheels hold no nvcc), installed into a venv under the cache.
#
# Architectures: candle embeds its kernels as PTX and the driver compiles them for the GPU at
# first use (cached in ~/.nv/ComputeCache), so one CUDA_COMPUTE_CAP=80 build runs on every
# GPU RunPod rents from compute capability 8.0 up (A100 8.0, A40/A6000/3090 8.6, L4/L40S/4090
# 8.9, H100/H200 9.0, and later ones). cuBLAS brings its own code for each architecture. PTX
# needs a driver at least as new as the nvcc that wrote it: nvcc 13.0 needs driver 580+, nvcc
# 12.8 (the Dockerfile's image) driver 570+.
#
# Environment: CUDA_COMPUTE_CAP (default 80), CARGO_TARGET_DIR (default
# ~/.cache/chatterbox-worker/target-cuda), CHATTERBOX_CUDA_CACHE (default
# ~/.cache/chatterbox-worker/cuda: the wheels and the patched candle-core), CARGO_FEATURES
# (extra features, e.g. "" to drop nothing; default "cuda").
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${CHATTERBOX_CUDA_CACHE:-$HOME/.cache/chatterbox-worker/cuda}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/chatterbox-worker/target-cuda}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
mkdir -p "$cache"

# --- nvcc -------------------------------------------------------------------------------
if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
    export PATH="$CUDA_HOME/bin:$PATH"
fi
if command -v nvcc >/dev/null; then
    cuda_root="$(dirname "$(dirname "$(command -v nvcc)")")"
    static_lib="$(find "$cuda_root" -name libcudart_static.a -print -quit)"
else
    venv="$cache/cu13-venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import nvidia" 2>/dev/null; then
        echo "installing the CUDA 13.0 build wheels into $venv" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
            nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
    fi
    cuda_root="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
    export PATH="$cuda_root/bin:$PATH"
    static_lib="$cuda_root/lib/libcudart_static.a"
fi
[ -f "$static_lib" ] || { echo "no libcudart_static.a under $cuda_root" >&2; exit 1; }
echo "nvcc: $(command -v nvcc) ($(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2

# candle-kernels links -lcudart; a folder where that name is the static archive makes the
# binary carry cudart itself instead of needing libcudart.so at run time.
cudart_dir="$cache/cudart-static"
mkdir -p "$cudart_dir"
ln -sf "$static_lib" "$cudart_dir/libcudart.a"

# --- candle-core with run-time loading ---------------------------------------------------
# candle-core asks cudarc to link CUDA's libraries (`dynamic-linking`); the same crate with
# `dynamic-loading` instead dlopens them, so a host without a driver can still start the
# binary. Features only add up in Cargo, so the switch is a patched copy of the crate.
cargo fetch --locked >/dev/null
candle_version="$(sed -n '/^name = "candle-core"$/{n;s/^version = "\(.*\)"$/\1/p}' Cargo.lock)"
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
original="$(find "$registry" -maxdepth 2 -type d -name "candle-core-$candle_version" -print -quit)"
[ -n "$original" ] || { echo "candle-core $candle_version is not in $registry" >&2; exit 1; }
patched="$cache/candle-core-$candle_version-dynamic-loading"
if [ ! -f "$patched/Cargo.toml" ]; then
    rm -rf "$patched.tmp"
    cp -r "$original" "$patched.tmp"
    sed -i 's/^    "dynamic-linking",$/    "dynamic-loading",/' "$patched.tmp/Cargo.toml"
    grep -q '"dynamic-loading"' "$patched.tmp/Cargo.toml" \
        || { echo "candle-core's Cargo.toml no longer names dynamic-linking" >&2; exit 1; }
    mv "$patched.tmp" "$patched"
fi

# The patch points candle-core at a path, which Cargo records in Cargo.lock: the committed
# lock file is put back afterwards, so the checkout stays clean and `--locked` keeps working.
cp Cargo.lock "$cache/Cargo.lock.committed"
trap 'cp "$cache/Cargo.lock.committed" Cargo.lock' EXIT

export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$cudart_dir"
start=$(date +%s)
cargo build --release --bin chatterbox-worker --features "${CARGO_FEATURES:-cuda}" \
    --config "patch.crates-io.candle-core.path=\"$patched\""
binary="$CARGO_TARGET_DIR/release/chatterbox-worker"
echo "built $binary ($(stat -c %s "$binary") bytes) in $(($(date +%s) - start)) s" >&2
echo "$binary"
