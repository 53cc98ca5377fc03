package testenv

import (
	"context"
	"fmt"
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

// Call is one REST call that may run on any goroutine (a benchmark's
// parallel callers): it drains the answer and returns an error for a
// status other than 200.
func Call(ctx context.Context, client *http.Client, method, url, token, body string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return Send(client, req)
}

// Send sends req on any goroutine, drains the answer and returns an error
// for a status other than 200.
func Send(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d", req.Method, req.URL, resp.StatusCode)
	}
	return nil
}
