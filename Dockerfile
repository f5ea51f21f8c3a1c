# deltaview in a container, configured by DELTAVIEW_* environment variables
# (every flag of `deltaview run` has one; see the README).
#
#   docker build -t deltaview .
#   docker run -e DELTAVIEW_SOURCE=postgres://... -v "$PWD/views:/views:ro" -p 9187:9187 deltaview

# Builder: the SQL parser (github.com/pganalyze/pg_query_go) is C code, so the
# build needs cgo and a C compiler, which the Debian-based Go images have.
FROM golang:1.26-bookworm AS build
ENV CGO_ENABLED=1
WORKDIR /src
# Dependencies first: this layer and the compiled parser stay cached until
# go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go build -trimpath github.com/pganalyze/pg_query_go/v5
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/deltaview ./cmd/deltaview

# Runtime: the binary links only glibc (libc.so.6 and the dynamic loader), so
# a distroless image with glibc is enough: no shell, no package manager.
# distroless/cc is distroless/base (glibc, CA certificates, tzdata, passwd)
# plus libgcc_s, which glibc loads for stack unwinding (pthread_exit,
# backtrace); the :nonroot tag has the user nonroot, UID 65532, and a
# world-writable /tmp.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/deltaview /usr/local/bin/deltaview
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 65532:65532
# --views: a mounted directory of .sql files with CREATE MATERIALIZED VIEW
# statements. --http-addr: /metrics, /healthz and /readyz. Large source
# transactions are spooled to the system temporary directory (/tmp, the
# --spool-dir default); with a read-only root file system, mount a writable
# volume there.
ENV DELTAVIEW_VIEWS=/views \
    DELTAVIEW_HTTP_ADDR=:9187
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/deltaview"]
CMD ["run"]
