package auth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy, the connection comes from the proxy: who the client is,
// and which scheme and host it used, are in the X-Forwarded-For, -Proto and -Host
// headers the proxy adds. Any client can send those headers too, so they are
// believed only from the peers Options.TrustedProxies lists, and from nobody by
// default.

// peer is the address of r's connection.
func peer(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// Proxies are the reverse proxies (Options.TrustedProxies) whose X-Forwarded-For,
// -Proto and -Host headers are believed. Its zero value believes nobody.
type Proxies []netip.Prefix

// trusts reports whether addr is a trusted proxy.
func (ps Proxies) trusts(addr netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// viaProxy reports whether r came from a trusted proxy.
func (ps Proxies) viaProxy(r *http.Request) bool {
	if len(ps) == 0 {
		return false
	}
	p, ok := peer(r)
	return ok && ps.trusts(p)
}

// ClientAddr is the address r comes from: the connection's peer, or, from a trusted
// proxy, the client X-Forwarded-For names. Each proxy appends the address it was
// reached from, so the client is the last address in the header that is no trusted
// proxy: addresses left of it are the client's own say.
func (ps Proxies) ClientAddr(r *http.Request) string {
	if !ps.viaProxy(r) {
		return r.RemoteAddr
	}
	hops := headerList(r, "X-Forwarded-For")
	client := r.RemoteAddr
	for i := len(hops) - 1; i >= 0; i-- {
		addr, ok := parseHop(hops[i])
		if !ok {
			break // a hop no proxy wrote: the last trusted one is the client
		}
		client = addr.String()
		if !ps.trusts(addr) {
			break
		}
	}
	return client
}

// ClientAddr is the address r comes from, as the login limiter counts it (see
// Proxies.ClientAddr).
func (a *Authenticator) ClientAddr(r *http.Request) string { return a.proxies.ClientAddr(r) }

// parseHop reads one address of X-Forwarded-For, with or without a port.
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// headerList is the comma-separated values of every header name of r, in order.
func headerList(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.Header.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// forwarded returns the value of header name the nearest proxy set (the last), or "".
func forwarded(r *http.Request, name string) string {
	l := headerList(r, name)
	if len(l) == 0 {
		return ""
	}
	return l[len(l)-1]
}

// validHost reports whether h can stand as the host (and port) of a URL: letters,
// digits, dots, hyphens, an IPv6 literal's brackets and colons, nothing that would
// end the URL or the challenge's quoted string.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}
