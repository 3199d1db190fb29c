package auth

import "github.com/prometheus/client_golang/prometheus"

// The reasons of graft_auth_failures_total.
const (
	// FailureWrongPassword is a login of a user or token with the wrong password.
	FailureWrongPassword = "wrong_password"
	// FailureUnknownUser is a login of a name that is no user's or token's.
	FailureUnknownUser = "unknown_user"
	// FailureRateLimited is a login refused before it was checked: its source failed
	// too often, or held every place for too long.
	FailureRateLimited = "rate_limited"
	// FailureInvalidToken is a bearer token that is expired, tampered with, revoked or
	// for another service.
	FailureInvalidToken = "invalid_token"
	// FailureDenied is a caller who may not do what they asked (403).
	FailureDenied = "denied"
)

func newFailures() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "graft_auth_failures_total",
		Help: "Failed authentications and refused requests, by reason: wrong_password, unknown_user, rate_limited, invalid_token, denied.",
	}, []string{"reason"})
	for _, r := range []string{FailureWrongPassword, FailureUnknownUser, FailureRateLimited, FailureInvalidToken, FailureDenied} {
		v.WithLabelValues(r) // every series from the start, at 0
	}
	return v
}

// Collectors are the authenticator's metrics.
func (a *Authenticator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{a.failures}
}

// Denied counts a request refused to a caller who may not do what it asked.
func (a *Authenticator) Denied() { a.failures.WithLabelValues(FailureDenied).Inc() }

func (a *Authenticator) failed(reason string) { a.failures.WithLabelValues(reason).Inc() }
