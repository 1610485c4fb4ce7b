# bootmae-serve: a multi-stage image. Build stage: the Swift toolchain on Debian 12; runtime stage:
# Debian slim with only the C libraries the binaries link (OpenBLAS, libpng, libjpeg-turbo, zlib).
#
#   docker build -t bootmae-serve .
#   docker run --rm -p 8080:8080 bootmae-serve
#
# Base images are build arguments so offline builders can use local copies (scripts/container-check.sh).
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libopenblas-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names every target, so its folders come along (the test fixtures are small);
# openapi.yaml is compiled into bootmae-serve (Sources/bootmae-serve/openapi.yaml links to it).
COPY Package.swift openapi.yaml ./
COPY Sources ./Sources
COPY Tests ./Tests
COPY bench ./bench
# The Swift runtime is linked statically: the runtime image needs no toolchain.
RUN swift build -c release --static-swift-stdlib --product bootmae-serve \
 && swift build -c release --static-swift-stdlib --product bootmae-train \
 && install -m 755 .build/release/bootmae-serve .build/release/bootmae-train /usr/local/bin/

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libopenblas0 libpng16-16 libjpeg62-turbo zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin bootmae
COPY --from=build /usr/local/bin/bootmae-serve /usr/local/bin/bootmae-train /usr/local/bin/
COPY models /srv/models
USER bootmae
WORKDIR /srv
ENV BOOTMAE_HOST=0.0.0.0 BOOTMAE_PORT=8080 BOOTMAE_MODELS_DIR=/srv/models
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/bootmae-serve", "--healthcheck"]
# The server is PID 1: it handles SIGTERM itself (drain, then exit).
ENTRYPOINT ["/usr/local/bin/bootmae-serve"]
