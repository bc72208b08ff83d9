# obdcr and obdcr-sandbox: static binaries on a distroless base, as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/obdcr ./cmd/obdcr \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/obdcr-sandbox ./cmd/obdcr-sandbox

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/obdcr /out/obdcr-sandbox /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8443 8444
ENTRYPOINT ["/usr/local/bin/obdcr"]
CMD ["serve"]
