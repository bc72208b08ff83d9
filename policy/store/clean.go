package store

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxCallerValue bounds a value a caller chose (a client_id from a path, a claimed
// software_id, a refusal's description) wherever obdcr records it: audit, logs.
const MaxCallerValue = 1024

// Clean makes a caller's value safe to record and to print: at most max bytes,
// control and other non-printing characters escaped as Go escapes them (so a
// newline or an ANSI sequence cannot forge a row), invalid UTF-8 replaced.
func Clean(s string, max int) string {
	if isPlain(s) && len(s) <= max {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		var piece string
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			piece = `\ufffd`
		case unicode.IsPrint(r) || r == ' ':
			piece = string(r)
		default:
			q := strconv.QuoteRune(r)
			piece = q[1 : len(q)-1]
		}
		if b.Len()+len(piece) > max-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteString(piece)
	}
	return b.String()
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// Bounded is e with every value a caller could have chosen cleaned and capped.
func (e AuditEntry) Bounded() AuditEntry {
	for _, f := range []*string{&e.SoftwareID, &e.OrgID, &e.ClientID, &e.Description, &e.ClaimedSoftwareID,
		&e.ClaimedOrgID, &e.ClaimedClientID, &e.Rule, &e.Error, &e.Profile, &e.RequestID, &e.Actor} {
		*f = Clean(*f, MaxCallerValue)
	}
	return e
}
