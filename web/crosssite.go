package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// crossSite refuses a request that a browser sends on behalf of another
// site: one whose Origin names another host, or whose Fetch Metadata says
// it comes from another site (Sec-Fetch-Site cross-site or same-site; a
// sibling subdomain is another tenant's page as much as a foreign site is).
// Clients that are not browsers send neither header and pass, whatever
// method they use: CloudSigma-dialect clients destroy by GET.
func crossSite(r *http.Request) error {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none": // none: typed into the address bar
	default:
		return errors.New("a request from another site (Sec-Fetch-Site " + site + ") is refused: use the dashboard or an API client")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return errors.New("a request with Origin " + origin + " is refused: not this host's")
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return errors.New("a request from " + origin + " is refused: not this host's origin (" + r.Host + ")")
	}
	return nil
}

// fromBrowser tells a browser's request (it sends Fetch Metadata) from an
// API client's.
func fromBrowser(r *http.Request) bool { return r.Header.Get("Sec-Fetch-Site") != "" }

// noChallenge drops the Basic challenge from the 401s it writes: a browser
// that got one would prompt for API credentials and then send them with
// every request to this host, from any page, until it is closed.
type noChallenge struct{ http.ResponseWriter }

func (w noChallenge) WriteHeader(code int) {
	w.Header().Del("WWW-Authenticate")
	w.ResponseWriter.WriteHeader(code)
}

func (w noChallenge) Write(b []byte) (int, error) {
	w.Header().Del("WWW-Authenticate") // a Write without WriteHeader sends the header too
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w noChallenge) Unwrap() http.ResponseWriter { return w.ResponseWriter }
