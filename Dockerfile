# syntax=docker/dockerfile:1
# hopprobe image: a static `probe` binary on distroless, non-root, no shell.
#   make image            (needs a Docker engine)

# build compiles a static probe binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static: no libc at run time, the Go DNS resolver, no cgo.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/probe ./cmd/probe

# distroless/static carries CA certificates and tzdata, runs as 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/probe /probe
COPY config/allinx.yaml /etc/hopprobe/allinx.yaml
USER 65532:65532
EXPOSE 9115
ENTRYPOINT ["/probe"]
CMD ["serve", "--config=/etc/hopprobe/allinx.yaml", "--listen=:9115"]
