package emulator

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
	clocktesting "k8s.io/utils/clock/testing"
)

// GET /app/installations/{id} as GitHub answers it, which credbroker asks
// before it acts on a webhook delivery: JWT auth, GitHub's field names,
// suspended_at null until suspended and then the time of the suspension
// (not of the request), the account's current login under its id.
func TestGetInstallationAnswersAsGitHubDoes(t *testing.T) {
	key, _, err := NewAppKey()
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer()
	defer s.Close()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	s.SetClock(clk)
	s.AddApp(7, &key.PublicKey)
	s.AddInstallation(AppInstallation{ID: 1, AppID: 7, Account: Account{Login: "acme", ID: 2, Type: "Organization"},
		Permissions: map[string]string{"packages": "read"}})

	get := func(auth string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"app/installations/1", nil)
		req.Header.Set("Authorization", "Bearer "+auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	appJWT := func() string {
		now := clk.Now()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{Issuer: "7",
			IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute))}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	if code, body := get("ghs_not-a-jwt"); code != http.StatusUnauthorized || body["message"] == nil {
		t.Errorf("without the App's JWT: %d %v, want 401 with a message", code, body)
	}
	code, body := get(appJWT())
	if code != http.StatusOK || body["suspended_at"] != nil || body["suspended_by"] != nil || body["target_type"] != "Organization" ||
		body["repository_selection"] != "all" || body["created_at"] != "2026-12-07T12:00:00Z" {
		t.Errorf("active: %d %v", code, body)
	}
	if _, ok := body["suspended_at"]; !ok {
		t.Error("suspended_at is left out; GitHub sends null")
	}
	clk.Step(time.Hour)
	s.SuspendInstallation(1)
	clk.Step(time.Hour)
	s.RenameAccount(2, "acme-corp")
	_, body = get(appJWT())
	account, _ := body["account"].(map[string]any)
	if body["suspended_at"] != "2026-12-07T13:00:00Z" || body["suspended_by"] == nil || account["login"] != "acme-corp" || account["id"] != float64(2) {
		t.Errorf("suspended at 13:00, renamed at 14:00: %v", body)
	}
	s.UnsuspendInstallation(1)
	if _, body = get(appJWT()); body["suspended_at"] != nil || body["updated_at"] != "2026-12-07T14:00:00Z" {
		t.Errorf("unsuspended: %v", body)
	}
	s.DeleteInstallation(1)
	if code, body := get(appJWT()); code != http.StatusNotFound || body["message"] != "Not Found" {
		t.Errorf("deleted: %d %v, want 404 Not Found", code, body)
	}
}
