# CPU image of the worker. The CUDA build (candle's `cuda` feature, nvcc in the build stage, a
# CUDA runtime base image) is not in yet.
FROM rust:1.95-bookworm AS build
# The opus crate builds libopus from source with CMake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin chatterbox-worker \
    && cp "$CARGO_HOME"/registry/src/*/fdk-aac-sys-0.5.0/aac/NOTICE /src/fdk-aac-NOTICE

# The Perth watermark's weights ship inside the resemble-perth wheel (MIT licence).
FROM python:3.11-slim AS perth
RUN pip download --no-deps --no-cache-dir --dest /wheel resemble-perth==1.0.1 \
    && python -c "import glob, zipfile; zipfile.ZipFile(glob.glob('/wheel/*.whl')[0]).extract('perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar', '/perth')"

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/chatterbox-worker /usr/local/bin/chatterbox-worker
# The FDK AAC licence must travel with the binary that contains the library (docs/audio.md).
COPY --from=build /src/fdk-aac-NOTICE /usr/share/doc/fdk-aac/NOTICE
COPY --from=perth /perth/perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar /opt/chatterbox/perth_net_250000.pth.tar
ENV CHATTERBOX_PERTH_CHECKPOINT=/opt/chatterbox/perth_net_250000.pth.tar
COPY bootstrap.sh /usr/local/bin/bootstrap.sh
COPY test_inputs /app/test_inputs
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/bootstrap.sh"]
