package service

import "errors"

// Kind is what sort of refusal an Error is; the HTTP renderer maps each to its status.
type Kind int

const (
	// Invalid: the request itself is wrong (400).
	Invalid Kind = iota
	// Unauthorized: the caller did not prove what the operation needs (401).
	Unauthorized
	// Forbidden: the caller proved itself but lacks a grant (403).
	Forbidden
	// NotFound: what the request names does not exist (404).
	NotFound
	// NotAllowed: the operation is switched off for this caller (405).
	NotAllowed
	// Stale: the request was made against a version since replaced (412).
	Stale
)

// Error is an operation refused by the service, with its protocol error code
// (RFC 6749/6750/7591 or obdcr's own) and a description that says what to fix.
type Error struct {
	Kind        Kind
	Code        string
	Description string
	// Challenge is the RFC 6750 §3 challenge a bearer refusal carries.
	Challenge string
	// Err is the cause, when there is one (a *store.SettingsError).
	Err error
	// unproven: refused before the caller proved any certificate; counted,
	// never audited, since it could be anyone, as often as it likes.
	unproven bool
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }
func (e *Error) Unwrap() error { return e.Err }

func refuse(kind Kind, code, desc string) *Error {
	return &Error{Kind: kind, Code: code, Description: desc}
}

// IsKind says whether err is a service refusal of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}
