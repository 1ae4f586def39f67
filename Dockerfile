# syntax=docker/dockerfile:1
# Build: a static binary with the migrations and assets embedded.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/lastmile ./cmd/lastmile

# Run: nothing but the binary, as a non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lastmile /lastmile
USER nonroot:nonroot
EXPOSE 8080
ENV LASTMILE_ADDR=:8080 LASTMILE_LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/lastmile", "healthcheck"]
ENTRYPOINT ["/lastmile"]
CMD ["serve"]
