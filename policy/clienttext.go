package policy

import (
	"context"
	"net/mail"
	"net/url"
	"unicode"
)

// RuleClientText names the check of the text a bank's consent screen shows.
const RuleClientText = "client_text"

// Bounds of the text a TPP chooses for itself.
const (
	maxClientName = 255
	maxTextURI    = 1024
	maxContacts   = 10
	maxContact    = 254 // RFC 5321's longest path
)

// ClientText checks what a consent screen shows of a client: its name, links and
// contacts. What the SSA carries, the directory vetted, and the registration
// takes it from there; the request's own values are checked only where the SSA
// is silent. Links must be https URLs with a host (never javascript: or data:),
// contacts e-mail addresses, and a name short and free of control characters.
func ClientText() Rule {
	return Rule{Name: RuleClientText, Needs: []string{RuleSSAClaims}, Check: func(_ context.Context, ev *Evaluation) error {
		st, g := ev.Statement, &ev.Granted
		for _, f := range []struct {
			claim, requested, vetted string
		}{
			{"client_uri", g.ClientURI, st.ClientURI}, {"logo_uri", g.LogoURI, st.LogoURI},
			{"policy_uri", g.PolicyURI, st.PolicyURI}, {"tos_uri", g.TosURI, st.TosURI},
		} {
			if f.vetted != "" || f.requested == "" {
				continue
			}
			if err := checkTextURI(f.claim, f.requested); err != nil {
				return err
			}
		}
		if st.ClientName == "" && g.ClientName != "" {
			if len(g.ClientName) > maxClientName {
				return Refuse(InvalidClientMetadata, "client_name", "is longer than %d bytes", maxClientName)
			}
			for _, r := range g.ClientName {
				if !unicode.IsPrint(r) {
					return Refuse(InvalidClientMetadata, "client_name", "holds a control or non-printing character (%U)", r)
				}
			}
		}
		if len(g.Contacts) > maxContacts {
			return Refuse(InvalidClientMetadata, "contacts", "has more than %d entries", maxContacts)
		}
		for i, c := range g.Contacts {
			a, err := mail.ParseAddress(c)
			if len(c) > maxContact || err != nil || a.Address != c || a.Name != "" {
				return Refuse(InvalidClientMetadata, "contacts", "entry %d is not an e-mail address (as ops@tpp.example)", i+1)
			}
		}
		return nil
	}}
}

func checkTextURI(claim, raw string) error {
	if len(raw) > maxTextURI {
		return Refuse(InvalidClientMetadata, claim, "is longer than %d bytes", maxTextURI)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return Refuse(InvalidClientMetadata, claim, "must be an https URL with a host")
	}
	if u.User != nil {
		return Refuse(InvalidClientMetadata, claim, "must not carry user information")
	}
	return nil
}
