# goatview image: `docker compose up` uses it (see docker-compose.yml).
# Build stage: release binary. cmake/pkg-config are there for crates that build
# native code (e.g. librdkafka via rdkafka-sys).
FROM rust:1 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin goatview \
    && cp target/release/goatview /usr/local/bin/goatview

# Runtime stage: just the binary.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/goatview /usr/local/bin/goatview
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["goatview"]
CMD ["serve", "--db", "/data/goatview.redb", "--listen", "0.0.0.0:8080"]
