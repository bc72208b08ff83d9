package policy

import (
	"errors"
	"fmt"
)

// Code is an RFC 7591 §3.2.2 error code. The code is chosen where a problem is
// found and travels unchanged to the one place that renders it.
type Code string

const (
	InvalidSoftwareStatement    Code = "invalid_software_statement"
	UnapprovedSoftwareStatement Code = "unapproved_software_statement"
	InvalidClientMetadata       Code = "invalid_client_metadata"
	InvalidRedirectURI          Code = "invalid_redirect_uri"
)

// Error is a refusal of a registration request: HTTP 400 with an RFC 7591 body.
// Claim and Rule let the TPP see what to fix and let the audit say which rule decided.
type Error struct {
	Code        Code
	Claim       string // the claim at fault, e.g. "redirect_uris"; empty when no single claim is
	Rule        string // the rule that refused, e.g. "redirect_uris.subset"; set by the chain
	Description string
}

func (e *Error) Error() string {
	return string(e.Code) + ": " + e.Description
}

// Refuse builds an Error whose description names the claim, as RFC 7591 users expect.
func Refuse(code Code, claim, format string, args ...any) *Error {
	desc := fmt.Sprintf(format, args...)
	if claim != "" {
		desc = claim + ": " + desc
	}
	return &Error{Code: code, Claim: claim, Description: desc}
}

// AsError reports whether err is, or wraps, a registration refusal.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsRefusal reports whether err is a refusal of the request (not a failure).
func IsRefusal(err error) bool {
	_, ok := AsError(err)
	return ok
}

// Unavailable says a dependency (Hydra, a JWKS host, the store) failed, not the
// request. The service answers 5xx and the TPP may retry the same request.
type Unavailable struct {
	Dependency string // "hydra", "store", ...
	Timeout    bool
	Err        error
	// Detail says what is known of the request's effect when something may have
	// happened (a create whose answer was lost); empty: nothing was changed.
	Detail string
}

func (u *Unavailable) Error() string {
	return u.Dependency + " unavailable: " + u.Err.Error()
}

func (u *Unavailable) Unwrap() error { return u.Err }
