// Package fapi is the FAPI edge's business logic without HTTP: request objects
// verified as FAPI 1.0 Advanced §5.2.2 and the CDS require, pushed authorization
// requests (RFC 9126), client assertions (RFC 7523 as FAPI restricts it), and
// the authorization responses obdcr signs (JARM, the hybrid ID token).
package fapi

import "fmt"

// Error is an OAuth error with its code (RFC 6749 §4.1.2.1, RFC 9126, RFC 9101).
// Page means it must not be sent to the client's redirect URI: the client is
// unknown or the redirect URI cannot be trusted, so the browser gets a page.
type Error struct {
	Code        string
	Description string
	Status      int
	Page        bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

// OAuth error codes the edge uses.
const (
	InvalidRequest          = "invalid_request"
	InvalidRequestObject    = "invalid_request_object"
	InvalidRequestURI       = "invalid_request_uri"
	InvalidClient           = "invalid_client"
	InvalidScope            = "invalid_scope"
	UnauthorizedClient      = "unauthorized_client"
	UnsupportedResponseType = "unsupported_response_type"
	ServerError             = "server_error"
	TemporarilyUnavailable  = "temporarily_unavailable"
	AccessDenied            = "access_denied"
)

func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Description: fmt.Sprintf(format, args...), Status: 400}
}

func page(code, format string, args ...any) *Error {
	e := refuse(code, format, args...)
	e.Page = true
	return e
}
