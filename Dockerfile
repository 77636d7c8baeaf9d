# CPU image of the worker. The CUDA build (candle's `cuda` feature, nvcc in the build stage, a
# CUDA runtime base image) arrives with the engine port.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin chatterbox-worker

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/chatterbox-worker /usr/local/bin/chatterbox-worker
COPY bootstrap.sh /usr/local/bin/bootstrap.sh
COPY test_inputs /app/test_inputs
WORKDIR /app
ENTRYPOINT ["/usr/local/bin/bootstrap.sh"]
