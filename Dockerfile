# Build: docker build -t tandem .   Run: docker run -p 3001:3001 tandem
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin tandem

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /app tandem \
 && mkdir -p /app/data /app/uploads /app/logs && chown -R tandem /app
COPY --from=build /src/target/release/tandem /usr/local/bin/tandem
WORKDIR /app
USER tandem
ENV HOST=0.0.0.0 PORT=3001 DATA_DIR=/app/data UPLOAD_DIR=/app/uploads LOG_DIR=/app/logs
VOLUME ["/app/data", "/app/uploads", "/app/logs"]
EXPOSE 3001
CMD ["tandem"]
