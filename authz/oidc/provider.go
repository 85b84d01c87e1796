package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/gatehouse-authz/gatehouse/authz"
)

// Media types of the two answer forms (RFC 7662, RFC 9701).
const (
	acceptJSON = "application/json"
	acceptJWT  = "application/token-introspection+jwt"
)

// noDescription is Meet's detail for a provider 401 whose WWW-Authenticate
// has no error_description.
const noDescription = "no error description in www-authenticate"

// askProvider posts token to the introspection endpoint and returns the
// checked verdict with the outcome for the metrics. An error means no
// verdict: transport failure, timeout, redirect, unexpected status,
// oversize answer, JWKS unavailable. It never holds the token or the secret.
func (i *Introspector) askProvider(ctx context.Context, token string) (authz.Introspection, string, error) {
	form := url.Values{"token": {token}}
	if !i.cfg.basicAuth {
		form.Set("client_id", i.cfg.clientID)
		form.Set("client_secret", i.cfg.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.cfg.introspectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return authz.Introspection{}, OutcomeError, fmt.Errorf("introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if i.cfg.jwksURL != "" {
		req.Header.Set("Accept", acceptJWT)
	} else {
		req.Header.Set("Accept", acceptJSON)
	}
	if i.cfg.basicAuth {
		// RFC 6749 §2.3.1: id and secret are form-urlencoded before they
		// are put in the Basic credentials.
		req.SetBasicAuth(url.QueryEscape(i.cfg.clientID), url.QueryEscape(i.cfg.clientSecret))
	}
	resp, err := i.cfg.client.Do(req)
	if err != nil {
		// *url.Error names the method and the URL (which holds neither the
		// token nor the secret: both are in the body) and the cause.
		return authz.Introspection{}, OutcomeError, fmt.Errorf("introspection request: %w", err)
	}
	defer resp.Body.Close()
	body, err := readBounded(resp.Body, maxAnswerBytes)
	if err != nil {
		return authz.Introspection{}, OutcomeError, fmt.Errorf("introspection answer (status %d): %w", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized && len(resp.Header.Values("Www-Authenticate")) > 0:
		// Meet passes the provider's error_description on as the detail.
		// requests joins repeated headers with ", ".
		desc, found := wwwAuthenticateParam(strings.Join(resp.Header.Values("Www-Authenticate"), ", "), "error_description")
		if !found {
			desc = noDescription
		}
		if !descriptionSafe(desc) {
			desc = ""
		}
		return authz.Introspection{Description: desc}, OutcomeProvider401, nil
	default:
		return authz.Introspection{}, OutcomeError, fmt.Errorf("introspection endpoint answered status %d", resp.StatusCode)
	}
	v, err := i.checkAnswer(ctx, body)
	var r refusal
	switch {
	case errors.As(err, &r):
		if i.logs.Enabled(ctx, i.cfg.logger, logLevelRefusal) {
			i.cfg.logger.LogAttrs(ctx, logLevelRefusal, "introspection answer refused", slogReason(r))
		}
		return authz.Introspection{}, OutcomeRefused, nil
	case err != nil:
		return authz.Introspection{}, OutcomeError, err
	}
	return v, OutcomeActive, nil
}

// readBounded reads at most limit bytes of r; more is an error.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// wwwAuthenticateParam returns the value of param in a WWW-Authenticate
// header as Meet reads it (mozilla-django-oidc's parse_www_authenticate_header:
// Python's urllib parse_http_list then parse_keqv_list): the header is split
// on commas outside double quotes (a backslash in quotes escapes the next
// character and is dropped), each element is trimmed and split on its first
// "=", the key taken as it is (so the first element's key is "Bearer error")
// and a value in double quotes unquoted. Where Python would raise on an
// element without "=" or with an empty value (Meet answers 500), the element
// is skipped.
func wwwAuthenticateParam(h, param string) (string, bool) {
	var (
		value   string
		found   bool
		part    strings.Builder
		escape  bool
		inQuote bool
	)
	flush := func() {
		elt := strings.TrimSpace(part.String())
		part.Reset()
		k, v, ok := strings.Cut(elt, "=")
		if !ok || v == "" {
			return
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		} else if v == `"` {
			// Python's v[0] == v[-1] == '"' holds for a lone quote too.
			v = ""
		}
		if k == param {
			value, found = v, true // parse_keqv_list: the last one wins
		}
	}
	for _, c := range h {
		switch {
		case escape:
			part.WriteRune(c)
			escape = false
		case inQuote:
			switch c {
			case '\\':
				escape = true
				continue
			case '"':
				inQuote = false
			}
			part.WriteRune(c)
		case c == ',':
			flush()
		default:
			if c == '"' {
				inQuote = true
			}
			part.WriteRune(c)
		}
	}
	if part.Len() > 0 {
		flush()
	}
	return value, found
}
