package testenv

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// REST calls a credbroker REST endpoint with a JSON body (none if empty) and
// a bearer token (none if empty), and returns the status and the body.
func REST(t testing.TB, method, url, token, body string) (int, []byte) {
	t.Helper()
	return RESTWith(t, http.DefaultClient, method, url, token, body)
}

// RESTWith is REST through client (one that trusts a test's CA, say).
func RESTWith(t testing.TB, client *http.Client, method, url, token, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
