# credbroker: a static binary on a distroless base, as a non-root user.
# Not built by CI here (no container engine on the build machines); it
# builds exactly what `make build` builds.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/ ./cmd/credbroker ./cmd/credbroker-credential-provider

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/credbroker /out/credbroker-credential-provider /usr/local/bin/
USER 65532:65532
EXPOSE 9090 8080
ENTRYPOINT ["/usr/local/bin/credbroker"]
CMD ["serve"]
