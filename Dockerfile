# syntax=docker/dockerfile:1

# Builds the userhooks worker, API server and CLI as static binaries on a
# distroless base.
#   docker build -t userhooks .
#   docker compose up --build worker

# ---- build ----
# Runs on the build host's platform and cross-compiles for the target one
# (pure Go: the SQLite driver needs no cgo).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

# Module downloads get their own layer, rebuilt only when go.mod or go.sum
# change.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

ARG TARGETOS
ARG TARGETARCH
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags="-s -w" -o /out/worker ./worker && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags="-s -w" -o /out/userhooks ./cmd/userhooks && \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
      go build -trimpath -ldflags="-s -w" -o /out/userhooks-api ./cmd/userhooks-api

# /data holds the SQLite store. It has to exist in the image, owned by the
# runtime user: a named volume mounted there for the first time copies this
# ownership, while a directory Docker creates itself would belong to root.
RUN mkdir -p /out/data

# ---- runtime ----
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/worker /worker
COPY --from=build /out/userhooks /userhooks
COPY --from=build /out/userhooks-api /userhooks-api
# 65532 is the nonroot user of the distroless images.
COPY --from=build --chown=65532:65532 /out/data /data
USER nonroot
ENTRYPOINT ["/worker"]
