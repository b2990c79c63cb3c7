# Multi-stage build: compile in the Rust image, run from a slim Debian as a
# non-root user with data, uploads and logs on volumes.
#   docker build -t tandem .
#   docker run -p 3001:3001 -e JWT_SECRET=... tandem
# The built-in TURN relay needs the host's public address; to enable it:
#   docker run -p 3001:3001 -p 3478:3478/udp -p 3478:3478 -p 49160-49200:49160-49200/udp \
#     -e TURN_MODE=internal -e TURN_PUBLIC_IP=<host ip> -e JWT_SECRET=... tandem
# Group calls' media (UDP 3479) announce the container's address unless
# told the host's: -p 3479:3479/udp -e SFU_PUBLIC_IP=<host ip>
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY web ./web
RUN cargo build --release --locked --bin tandem

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app tandem \
 && mkdir -p /app/data /app/uploads /app/logs && chown -R tandem /app
COPY --from=build /src/target/release/tandem /usr/local/bin/tandem
WORKDIR /app
USER tandem
ENV HOST=0.0.0.0 PORT=3001 DATA_DIR=/app/data UPLOAD_DIR=/app/uploads LOG_DIR=/app/logs \
    TANDEM_ENV=production TURN_MODE=off TURN_MIN_PORT=49160 TURN_MAX_PORT=49200
VOLUME ["/app/data", "/app/uploads", "/app/logs"]
EXPOSE 3001 3478 3478/udp 3479/udp 49160-49200/udp
STOPSIGNAL SIGTERM
CMD ["tandem"]
