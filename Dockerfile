# The worker's images. `docker build .` gives the CUDA image (the last stage);
# `docker build --target cpu .` the CPU one. Both start through bootstrap.sh.
#
# The CUDA build runs tools/build-cuda.sh, the same script as a build without Docker, on
# NVIDIA's CUDA 12.8 devel image: its nvcc writes PTX that drivers from 570 on can load (the
# CUDA 13.0 wheels the script falls back to elsewhere need driver 580+), and the matching
# runtime image brings cuBLAS, cuRAND and NVRTC, which the binary loads at run time.
ARG CUDA_VERSION=12.8.1
ARG UBUNTU=ubuntu24.04

# The Perth watermark's weights ship inside the resemble-perth wheel (MIT licence).
FROM python:3.11-slim AS perth
RUN pip download --no-deps --no-cache-dir --dest /wheel resemble-perth==1.0.1 \
    && python -c "import glob, zipfile; zipfile.ZipFile(glob.glob('/wheel/*.whl')[0]).extract('perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar', '/perth')"

# --- CPU ---------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build-cpu
# The opus crate builds libopus from source with CMake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin chatterbox-worker \
    && cp "$CARGO_HOME"/registry/src/*/fdk-aac-sys-0.5.0/aac/NOTICE /src/fdk-aac-NOTICE

FROM debian:bookworm-slim AS cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build-cpu /src/target/release/chatterbox-worker /usr/local/bin/chatterbox-worker
# The FDK AAC licence must travel with the binary that contains the library (docs/audio.md).
COPY --from=build-cpu /src/fdk-aac-NOTICE /usr/share/doc/fdk-aac/NOTICE
COPY --from=perth /perth/perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar /opt/chatterbox/perth_net_250000.pth.tar
ENV CHATTERBOX_PERTH_CHECKPOINT=/opt/chatterbox/perth_net_250000.pth.tar
COPY bootstrap.sh /usr/local/bin/bootstrap.sh
COPY voices.json.example /opt/chatterbox/voices.json.example
COPY test_inputs /app/test_inputs
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/bootstrap.sh"]

# --- CUDA --------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build-cuda
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95
# Every compute capability from 8.0 up runs this build: the kernels are PTX (tools/build-cuda.sh).
ARG CUDA_COMPUTE_CAP=80
ENV CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} CARGO_TARGET_DIR=/src/target CHATTERBOX_CUDA_CACHE=/src/cuda-cache
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY tools/build-cuda.sh tools/build-cuda.sh
# The dependencies, candle's kernels above all, in a layer of their own: built against
# placeholder sources, so a change to src/ rebuilds only the worker's own crate.
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for bench in t3 generate audio; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && bash tools/build-cuda.sh \
    && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs \
    && bash tools/build-cuda.sh \
    && cp "$CARGO_HOME"/registry/src/*/fdk-aac-sys-0.5.0/aac/NOTICE /src/fdk-aac-NOTICE

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS cuda
COPY --from=build-cuda /src/target/release/chatterbox-worker /usr/local/bin/chatterbox-worker
COPY --from=build-cuda /src/fdk-aac-NOTICE /usr/share/doc/fdk-aac/NOTICE
COPY --from=perth /perth/perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar /opt/chatterbox/perth_net_250000.pth.tar
ENV CHATTERBOX_PERTH_CHECKPOINT=/opt/chatterbox/perth_net_250000.pth.tar \
    CHATTERBOX_DEVICE=auto
COPY bootstrap.sh /usr/local/bin/bootstrap.sh
COPY voices.json.example /opt/chatterbox/voices.json.example
COPY test_inputs /app/test_inputs
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/bootstrap.sh"]
