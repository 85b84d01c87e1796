# syntax=docker/dockerfile:1
#
# gatehouse container image: a static Go binary on distroless, run as a
# non-root user, with no shell or package manager in the final image.
#
#   docker build -t gatehouse:dev --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) .
#
# deploycheck/dockerfile_test.go lints this file with BuildKit's checks (what
# `docker build --check` runs) and checks that it agrees with go.mod (the Go
# version), the Helm chart (USER, EXPOSE) and cmd/gatehouse (the -X names).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
# Set by BuildKit from --platform; cross-compiling is free with CGO off.
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# Stamped into the binary (gatehouse version).
ARG VERSION=devel
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/gatehouse ./cmd/gatehouse

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /gatehouse
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can verify it.
USER 65532:65532
# ext_authz gRPC, HTTP forward-auth, ops (/healthz, /readyz, /metrics).
EXPOSE 9000 8080 8081
ENTRYPOINT ["/gatehouse", "serve"]
