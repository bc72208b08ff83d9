package sandbox

import (
	"context"
	"net/http"
	"net/url"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Push sends a request object to a PAR endpoint (RFC 9126), authenticated by
// a client assertion whose aud is the PAR URL.
func (c *Client) Push(ctx context.Context, parURL, clientID, requestObject string) (*Response, error) {
	form := url.Values{"request": {requestObject}}
	if err := c.authenticate(form, clientID, parURL); err != nil {
		return nil, err
	}
	return c.do(ctx, http.MethodPost, parURL, "application/x-www-form-urlencoded", "", []byte(form.Encode()))
}

// OpenJARM verifies a JARM response with the issuer's published keys and
// returns its parameters (code and state, or error), as a relying party must.
func OpenJARM(response string, keys jwk.Set, issuer, clientID string) (url.Values, error) {
	tok, err := jwt.Parse([]byte(response), jwt.WithKeySet(keys), jwt.WithIssuer(issuer), jwt.WithAudience(clientID))
	if err != nil {
		return nil, err
	}
	claims, err := tok.AsMap(context.Background())
	if err != nil {
		return nil, err
	}
	out := url.Values{}
	for _, n := range []string{"code", "state", "error", "error_description"} {
		if v, ok := claims[n].(string); ok {
			out.Set(n, v)
		}
	}
	return out, nil
}
