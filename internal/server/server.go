// Package server is the registry's HTTP surface: the OCI distribution API, graft's
// metadata API (/graft/v1/), the legacy ORAS artifacts API, the token endpoint and
// metrics. It parses requests, checks access, calls the registry service and writes
// its answers; the rules live in the service.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/graft-registry/graft/internal/auth"
	"github.com/graft-registry/graft/internal/errcode"
	"github.com/graft-registry/graft/internal/events"
	"github.com/graft-registry/graft/internal/httpstatus"
	"github.com/graft-registry/graft/internal/registry"
)

// Server serves a registry over HTTP.
type Server struct {
	reg     *registry.Registry
	log     *slog.Logger
	metrics *metrics
	promh   http.Handler
	auth    *auth.Authenticator
	mirror  Mirror
	limits  Limits
	events  EventReporter
	// manifestBodies is the memory budget of manifest bodies in flight.
	manifestBodies *bodyBudget
	routes         [len(kindNames)]endpoint
}

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil means a registry of its own,
	// served at /metrics.
	Registerer prometheus.Registerer
	// Auth authenticates and authorizes every request; nil lets anyone do anything.
	Auth *auth.Authenticator
	// Limits bound what requests may hold of the server.
	Limits Limits
	// Mirror fills the repositories of pull-through mirrors; nil for none.
	Mirror Mirror
	// Events reports the followers of the outbox at /graft/v1/_events, and their
	// metrics; nil when nothing follows it.
	Events EventReporter
}

// EventReporter tells how the followers of the outbox (webhooks, replication rules)
// are doing.
type EventReporter interface {
	Status(ctx context.Context) ([]events.Status, error)
	Collectors() []prometheus.Collector
}

// New returns a server for reg.
func New(reg *registry.Registry, opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{reg: reg, log: log, auth: opts.Auth, mirror: opts.Mirror, limits: opts.Limits, events: opts.Events,
		manifestBodies: newBodyBudget(opts.Limits.ManifestMemory)}
	s.routes = s.endpoints()
	var gatherer prometheus.Gatherer = prometheus.DefaultGatherer
	if opts.Registerer == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
		opts.Registerer, gatherer = r, r
	}
	s.metrics = newMetrics(opts.Registerer)
	opts.Registerer.MustRegister(reg.Collectors()...)
	if opts.Mirror != nil {
		opts.Registerer.MustRegister(opts.Mirror.Collectors()...)
	}
	if opts.Events != nil {
		opts.Registerer.MustRegister(opts.Events.Collectors()...)
	}
	if opts.Auth != nil {
		opts.Registerer.MustRegister(opts.Auth.Collectors()...)
	}
	s.promh = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return s
}

// ServeHTTP implements http.Handler. It takes paths as they come: http.ServeMux would
// clean "a/../b" and answer with a redirect to another repository, which clients
// follow with the same method and body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = guardBody(s.limits, w, r)
	if s.serveHealth(w, r) {
		return
	}
	if r.URL.Path == "/metrics" {
		s.promh.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == auth.TokenPath && s.auth != nil {
		s.serveToken(w, r)
		return
	}
	s.serveAPI(w, r)
}

type handlerFunc func(http.ResponseWriter, *http.Request, route) error

// endpoint is what one kind of route answers: a handler per method, as distribution's
// handlers have it. Any other method is answered 405, with allow as the Allow header.
type endpoint struct {
	handlers map[string]handlerFunc
	allow    string
}

// methodOrder is the order of the methods an Allow header names.
var methodOrder = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// newEndpoint is the endpoint of handlers; HEAD is answered wherever GET is, by the
// same handler, which writes no body for HEAD.
func newEndpoint(handlers map[string]handlerFunc) endpoint {
	if get, ok := handlers[http.MethodGet]; ok {
		handlers[http.MethodHead] = get
	}
	var allow []string
	for _, m := range methodOrder {
		if handlers[m] != nil {
			allow = append(allow, m)
		}
	}
	return endpoint{handlers: handlers, allow: strings.Join(allow, ", ")}
}

// endpoints are the server's routes: the handlers of each kind, by method.
func (s *Server) endpoints() [len(kindNames)]endpoint {
	type m = map[string]handlerFunc
	const get, put, post, patch, del = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete
	return [len(kindNames)]endpoint{
		routeNone:          newEndpoint(m{}),
		routeBase:          newEndpoint(m{get: s.base}),
		routeCatalog:       newEndpoint(m{get: s.catalog}),
		routeTags:          newEndpoint(m{get: s.tags}),
		routeManifest:      newEndpoint(m{get: s.getManifest, put: s.putManifest, del: s.deleteManifest}),
		routeBlob:          newEndpoint(m{get: s.getBlob, del: s.deleteBlob}),
		routeUploads:       newEndpoint(m{post: s.startUpload}),
		routeUpload:        newEndpoint(m{get: s.uploadStatus, patch: s.patchUpload, put: s.finishUpload, del: s.cancelUpload}),
		routeReferrers:     newEndpoint(m{get: s.referrers}),
		routeORASManifest:  newEndpoint(m{get: s.orasManifest}),
		routeORASReferrers: newEndpoint(m{get: s.orasReferrers}),
		routeMetaRepos:     newEndpoint(m{get: s.metaRepositories}),
		routeMetaRepo:      newEndpoint(m{get: s.metaRepository, patch: s.patchRepository, del: s.deleteRepository}),
		routeMetaManifests: newEndpoint(m{get: s.metaManifests}),
		routeMetaManifest:  newEndpoint(m{get: s.metaManifest, patch: s.patchManifest}),
		routeMetaEvents:    newEndpoint(m{get: s.metaEvents}),
	}
}

// serveAPI dispatches by route and method, and records what each request did.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt := parseRoute(r.URL.Path)
	sw := &httpstatus.Writer{ResponseWriter: w}
	countBlobBytes := s.metrics.blobBytesOf(rt, r)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			if sw.Status() == 0 {
				s.writeError(sw, r, errcode.New(errcode.Unknown, "internal server error"))
			}
		}
		// the line of the request is the access log's (internal/accesslog)
		s.metrics.observe(rt.kind, r.Method, sw.Status(), time.Since(start))
		countBlobBytes(sw)
	}()
	sw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	ep := &s.routes[rt.kind]
	h := ep.handlers[r.Method]
	if h == nil {
		if rt.kind == routeNone {
			s.writeError(sw, r, &errcode.Error{Code: errcode.Unsupported, Message: "no such endpoint", Status: http.StatusNotFound})
		} else {
			sw.Header().Set("Allow", ep.allow)
			s.writeError(sw, r, errcode.New(errcode.Unsupported, "%s is not supported here", r.Method))
		}
		return
	}
	if s.auth != nil {
		var err error
		if r, err = s.authorize(sw, r, rt); err != nil {
			s.writeError(sw, r, err)
			return
		}
	}
	if err := h(sw, r, rt); err != nil {
		s.writeError(sw, r, err)
	}
}

func (s *Server) base(w http.ResponseWriter, r *http.Request, _ route) error {
	s.writeJSON(w, r, http.StatusOK, "application/json", struct{}{})
	return nil
}

type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	blobBytes *prometheus.CounterVec // see blobmetrics.go
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "graft_http_requests_total",
			Help: "HTTP requests by endpoint, method and status.",
		}, []string{"endpoint", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "graft_http_request_duration_seconds",
			Help:    "HTTP request latency by endpoint and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"endpoint", "method"}),
	}
	m.blobBytes = newBlobBytes()
	reg.MustRegister(m.requests, m.duration, m.blobBytes)
	return m
}

func (m *metrics) observe(k kind, method string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(k.String(), method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(k.String(), method).Observe(d.Seconds())
}
