package web_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/resqued/resqued/pkg/web"
)

// do sends one request to the dashboard with the given Host header.
func do(t *testing.T, e *env, method, host, path string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHost_Foreign: a DNS-rebinding page (Host: attacker.example) gets
// neither data nor a CSRF token, and cannot clear the failed list even
// with a valid token and a matching Origin.
func TestHost_Foreign(t *testing.T) {
	e := start(t, "")
	for _, host := range []string{"attacker.example", "attacker.example:5678", "localhost.attacker.example", "127.0.0.1.attacker.example"} {
		for _, path := range []string{"/", "/failed", "/queues/high", "/workers", "/delayed", "/status?token=tok123", "/static/live.js"} {
			code, body := do(t, e, http.MethodGet, host, path, nil, nil)
			if code != http.StatusMisdirectedRequest {
				t.Errorf("GET %s with Host %s: %d, want 421", path, host, code)
			}
			for _, leak := range []string{`name="csrf"`, "RuntimeError", "Mailer", "half", busyWorker, "Later"} {
				if strings.Contains(body, leak) {
					t.Errorf("GET %s with Host %s: the body carries %q:\n%s", path, host, leak, body)
				}
			}
			if code == http.StatusMisdirectedRequest && !strings.Contains(body, "--web-host") {
				t.Errorf("GET %s with Host %s: the refusal does not say which flag to set:\n%s", path, host, body)
			}
		}
	}

	tok := token(t, e) // a real token, as a rebinding page might have read it
	_, failed0 := e.state(t)
	code, _ := do(t, e, http.MethodPost, "attacker.example", "/failed/clear", url.Values{"csrf": {tok}},
		map[string]string{"Origin": "http://attacker.example"})
	if code != http.StatusMisdirectedRequest {
		t.Errorf("POST /failed/clear with Host attacker.example and its Origin: %d, want 421", code)
	}
	if _, failed := e.state(t); len(failed) != len(failed0) || len(failed) != 2 {
		t.Errorf("failed list after a foreign POST clear: %d records, want the 2 it had", len(failed))
	}
}

// TestHost_Loopback: the loopback names work with and without a port.
func TestHost_Loopback(t *testing.T) {
	e := start(t, "")
	for _, host := range []string{"localhost", "localhost:5678", "LocalHost:5678", "127.0.0.1", "127.0.0.1:5678", "[::1]", "[::1]:5678"} {
		if code, body := do(t, e, http.MethodGet, host, "/failed", nil, nil); code != 200 || !strings.Contains(body, `name="csrf"`) {
			t.Errorf("GET /failed with Host %s: %d, want 200 with the page", host, code)
		}
	}
	tok := token(t, e)
	code, _ := do(t, e, http.MethodPost, "localhost:5678", "/failed/clear", url.Values{"csrf": {tok}},
		map[string]string{"Origin": "http://localhost:5678"})
	if code != http.StatusSeeOther {
		t.Fatalf("POST /failed/clear with Host localhost:5678: %d, want 303", code)
	}
	if _, failed := e.state(t); len(failed) != 0 {
		t.Errorf("failed list after clear on localhost: %d records, want 0", len(failed))
	}
}

// TestHost_Named: the names in Config.Hosts (--web-host, --listen's
// host) work, on any port or only on the one given.
func TestHost_Named(t *testing.T) {
	e := startWith(t, func(c *web.Config) {
		c.Hosts = []string{"dash.example.com", "Ops.Example.COM.", "10.1.2.3", "pinned.example:8443"}
	})
	for host, want := range map[string]int{
		"dash.example.com":      200,
		"DASH.example.com:443":  200,
		"dash.example.com.":     200,
		"ops.example.com:8080":  200,
		"10.1.2.3:5678":         200,
		"pinned.example:8443":   200,
		"pinned.example:80":     http.StatusMisdirectedRequest,
		"pinned.example":        http.StatusMisdirectedRequest,
		"evil.dash.example.com": http.StatusMisdirectedRequest,
		"dash.example.com.evil": http.StatusMisdirectedRequest,
		"10.1.2.4":              http.StatusMisdirectedRequest,
		"localhost:5678":        200,
	} {
		if code, _ := do(t, e, http.MethodGet, host, "/failed", nil, nil); code != want {
			t.Errorf("GET /failed with Host %q: %d, want %d", host, code, want)
		}
	}
	// Behind the proxy the buttons work: Origin and Host agree.
	tok := token(t, e)
	code, _ := do(t, e, http.MethodPost, "dash.example.com", "/failed/clear", url.Values{"csrf": {tok}},
		map[string]string{"Origin": "https://dash.example.com"})
	if code != http.StatusSeeOther {
		t.Fatalf("POST /failed/clear with Host dash.example.com: %d, want 303", code)
	}
	if _, failed := e.state(t); len(failed) != 0 {
		t.Errorf("failed list after clear through dash.example.com: %d records, want 0", len(failed))
	}
}

// TestAuth_Metrics: with Auth set, /metrics needs it like every page;
// /healthz answers anyone, whatever the Host.
func TestAuth_Metrics(t *testing.T) {
	e := startWith(t, func(c *web.Config) {
		c.Auth = "admin:s3cret"
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "resque_processed_total 10\n") })
		c.Healthz = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	})
	if code, body := do(t, e, http.MethodGet, "127.0.0.1", "/metrics", nil, nil); code != http.StatusUnauthorized || strings.Contains(body, "resque_") {
		t.Errorf("GET /metrics without auth: %d %q, want 401 and no metrics", code, body)
	}
	auth := map[string]string{"Authorization": "Basic YWRtaW46czNjcmV0"} // admin:s3cret
	if code, body := do(t, e, http.MethodGet, "127.0.0.1", "/metrics", nil, auth); code != 200 || !strings.Contains(body, "resque_processed_total") {
		t.Errorf("GET /metrics with auth: %d %q", code, body)
	}
	if code, _ := do(t, e, http.MethodGet, "attacker.example", "/metrics", nil, auth); code != http.StatusMisdirectedRequest {
		t.Errorf("GET /metrics with Host attacker.example: %d, want 421", code)
	}
	for _, host := range []string{"127.0.0.1", "10.0.0.7:5678"} { // a load balancer calls by IP
		if code, body := do(t, e, http.MethodGet, host, "/healthz", nil, nil); code != 200 || body != "ok\n" {
			t.Errorf("GET /healthz with Host %s, no auth: %d %q, want 200 ok", host, code, body)
		}
	}
}
