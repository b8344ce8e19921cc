package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// secure checks the Host, then basic auth (when configured), and adds
// protective headers.
func (s *server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'")
		if !AllowedHost(r.Host, s.cfg.Hosts) {
			s.log.Debug("request for a foreign host refused", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
			http.Error(w, misdirected(r.Host), http.StatusMisdirectedRequest)
			return
		}
		if s.cfg.Auth != "" {
			user, pass, ok := r.BasicAuth()
			got := sha256.Sum256([]byte(user + ":" + pass))
			want := sha256.Sum256([]byte(s.cfg.Auth))
			if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
				h.Set("WWW-Authenticate", `Basic realm="resqued", charset="UTF-8"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// misdirected is the body of the 421 for a Host the dashboard does not
// answer to: what happened, and which flag to set.
func misdirected(host string) string {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	if name == "" {
		name = "NAME"
	}
	return fmt.Sprintf("misdirected request: this dashboard answers only to localhost, 127.0.0.1, [::1], "+
		"its --listen address and the names given with --web-host, not to %q. "+
		"If you reach it by that name (through a reverse proxy, say), start it with --web-host %s "+
		"(or RESQUED_WEB_HOST=%s).", host, name, name)
}

// AllowedHost reports whether the dashboard answers to a request whose
// Host header is host: a loopback name (localhost, a 127.x.y.z or ::1
// address) on any port, or one of hosts ("name" on any port, "name:port"
// on that port). Names compare without case and without a trailing dot.
func AllowedHost(host string, hosts []string) bool {
	name, port := splitHost(host)
	if name == "" {
		return false
	}
	if name == "localhost" {
		return true
	}
	if ip := net.ParseIP(name); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, h := range hosts {
		n, p := splitHost(h)
		if n == name && (p == "" || p == port) {
			return true
		}
	}
	return false
}

// splitHost splits "name", "name:port", "[v6]" or "[v6]:port" into the
// lower-case name without brackets or trailing dot, and the port.
func splitHost(host string) (name, port string) {
	name = host
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	name = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]"), ".")
	return strings.ToLower(name), port
}

// sameOrigin checks Origin, else Referer, against the Host when present.
func sameOrigin(r *http.Request) bool {
	for _, h := range []string{"Origin", "Referer"} {
		v := r.Header.Get(h)
		if v == "" {
			continue
		}
		if v == "null" {
			return false
		}
		u, err := url.Parse(v)
		if err != nil {
			return false
		}
		return strings.EqualFold(u.Host, r.Host)
	}
	return true
}
