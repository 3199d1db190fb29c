# graft: an OCI registry and its client, in one static binary.
#
#   docker build -t graft --build-arg VERSION=$(git describe --tags --always) .
#   docker run -p 5000:5000 -v graft-data:/data graft serve --htpasswd /data/htpasswd
#
# The build stage's go build is the one deploy/dockerfile_test.go runs.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/graft ./cmd/graft

FROM alpine:3.22
# wget (busybox) serves the health check; graft itself needs nothing of the image.
RUN addgroup -S -g 10001 graft && adduser -S -D -H -u 10001 -G graft graft \
	&& mkdir /data && chown graft:graft /data
COPY --from=build /out/graft /usr/local/bin/graft
USER 10001:10001
VOLUME /data
ENV GRAFT_DATA_DIR=/data \
	GRAFT_ADDR=0.0.0.0:5000 \
	GRAFT_LOG_FORMAT=json
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
	CMD wget -q -O /dev/null http://127.0.0.1:5000/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/graft"]
CMD ["serve"]
