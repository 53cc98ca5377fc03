package emulator

import (
	"net/http"
	"strconv"
	"time"
)

// ControlPrefix is where the emulator's control API lives on the API
// server, for tests that run the emulator as a separate process. It is not
// part of GitHub's API.
const ControlPrefix = "/_emulator/"

// controlHandler lets another process do what a test in this process does
// with the Server's methods:
//
//	POST /_emulator/suspend?installation=42       POST /_emulator/unsuspend?installation=42
//	POST /_emulator/revoke?token=ghp_...          POST /_emulator/accept-app-tokens?accept=true
//	POST /_emulator/token-lifetime?duration=36s   GET  /_emulator/calls?route=POST+/app/...
//	POST /_emulator/token-format?format=stateful  (or stateless, the default)
//	GET  /_emulator/token-requests                (the realm's requests, JSON)
func (s *Server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	installation := func(w http.ResponseWriter, r *http.Request) (int64, bool) {
		id, err := strconv.ParseInt(r.URL.Query().Get("installation"), 10, 64)
		if err != nil {
			http.Error(w, "installation: want a number", http.StatusBadRequest)
			return 0, false
		}
		return id, true
	}
	mux.HandleFunc("POST "+ControlPrefix+"suspend", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := installation(w, r); ok {
			s.SuspendInstallation(id)
		}
	})
	mux.HandleFunc("POST "+ControlPrefix+"unsuspend", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := installation(w, r); ok {
			s.UnsuspendInstallation(id)
		}
	})
	mux.HandleFunc("POST "+ControlPrefix+"revoke", func(_ http.ResponseWriter, r *http.Request) {
		s.Revoke(r.URL.Query().Get("token"))
	})
	mux.HandleFunc("POST "+ControlPrefix+"accept-app-tokens", func(_ http.ResponseWriter, r *http.Request) {
		s.AcceptAppTokens(r.URL.Query().Get("accept") == "true")
	})
	mux.HandleFunc("POST "+ControlPrefix+"token-lifetime", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("duration"))
		if err != nil || d <= 0 {
			http.Error(w, "duration: want a positive Go duration", http.StatusBadRequest)
			return
		}
		s.SetTokenLifetime(d)
	})
	mux.HandleFunc("POST "+ControlPrefix+"token-format", func(w http.ResponseWriter, r *http.Request) {
		switch f := TokenFormat(r.URL.Query().Get("format")); f {
		case TokenFormatStateless, TokenFormatStateful:
			s.SetTokenFormat(f)
		default:
			http.Error(w, "format: want stateless or stateful", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET "+ControlPrefix+"token-requests", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.TokenRequests())
	})
	mux.HandleFunc("GET "+ControlPrefix+"calls", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strconv.Itoa(s.Calls(r.URL.Query().Get("route")))))
	})
	return mux
}
