# Billstream's image, for docker-compose.yml (scale mode against the compose file's Postgres, Kafka and ClickHouse).
# The build stage needs librdkafka's build tools (the rdkafka crate bundles it); the runtime stage only what the
# binary links and curl for the healthchecks.
FROM rust:1.89-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --bin billstream

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libcurl4 zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/billstream /usr/local/bin/billstream
ENV BILLSTREAM_LISTEN=0.0.0.0:3000 \
    BILLSTREAM_DATA_DIR=/var/lib/billstream
EXPOSE 3000
ENTRYPOINT ["billstream"]
CMD ["all"]
