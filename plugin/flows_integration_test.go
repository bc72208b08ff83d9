package plugin_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/obdcr/obdcr/deploy/sandbox"
)

// A registration is only as good as the client it produces. Each profile's TPP
// registers through obdcr, then runs the flows it registered for on the real
// Hydra, with what the discovery document says: a signed request object, the
// bank's login and consent, private_key_jwt, a refresh, client_credentials.
func TestRegisteredClientRunsItsFlows(t *testing.T) {
	o := startObdcr(t, withRegister)
	ctx := context.Background()
	_, doc := discovery(t, o)
	authURL, tokenURL := doc["authorization_endpoint"].(string), doc["token_endpoint"].(string)
	keys, err := jwk.Fetch(ctx, doc["jwks_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		profile, responseType, scope, ccScope string
	}{
		{sandbox.UK, "code id_token", "openid accounts offline_access", "accounts"},
		{sandbox.AU, "code", "openid bank:accounts.basic:read offline_access", "cdr:registration"},
	}
	for _, tc := range cases {
		t.Run(tc.profile, func(t *testing.T) {
			tpp, c := newTPP(t, tc.profile)
			res, err := c.Register(ctx, o.URL, request(t, tpp, nil, nil))
			if err != nil || res.Status != http.StatusCreated {
				t.Fatalf("register: %v %d %s", err, res.Status, res.Body)
			}
			created := res.JSON()
			clientID := created["client_id"].(string)
			ar := sandbox.AuthorizeRequest{AuthURL: authURL, Issuer: env.Issuer(), ClientID: clientID,
				RedirectURI: tpp.RedirectURIs[0], ResponseType: tc.responseType, Scope: tc.scope}

			a, err := c.Authorize(ctx, ar, env.Sandbox.PKI().Pool())
			if err != nil || a.Error != "" || a.Code == "" || a.State != a.SentState {
				t.Fatalf("authorization with a PS256 request object: %v %+v", err, a)
			}
			tokens, err := c.ExchangeCode(ctx, tokenURL, clientID, ar.RedirectURI, a)
			if err != nil {
				t.Fatalf("code with private_key_jwt: %v", err)
			}
			if tokens.RefreshToken == "" {
				t.Errorf("no refresh token, though the client registered refresh_token")
			}

			// The ID token is signed as the registration said and the document lists.
			for name, idt := range map[string]string{"token endpoint": tokens.IDToken, "front channel": a.IDToken} {
				if idt == "" {
					if name == "token endpoint" || tc.responseType == "code id_token" {
						t.Errorf("no ID token from the %s", name)
					}
					continue
				}
				msg, err := jws.Parse([]byte(idt))
				if err != nil {
					t.Fatal(err)
				}
				alg := msg.Signatures()[0].ProtectedHeaders().Algorithm().String()
				if alg != created["id_token_signed_response_alg"] || !slices.Contains(strs(doc["id_token_signing_alg_values_supported"]), alg) {
					t.Errorf("%s ID token signed %s; the registration said %v, the document %v", name, alg,
						created["id_token_signed_response_alg"], doc["id_token_signing_alg_values_supported"])
				}
				tok, err := jwt.Parse([]byte(idt), jwt.WithKeySet(keys), jwt.WithAudience(clientID), jwt.WithIssuer(env.Issuer()))
				if err != nil {
					t.Fatalf("%s ID token does not verify with Hydra's JWKS: %v", name, err)
				}
				if nonce, _ := tok.Get("nonce"); nonce != a.Nonce {
					t.Errorf("%s ID token nonce %v", name, nonce)
				}
			}

			t.Logf("code redeemed: access token, refresh token, ID token (%d bytes), scope %q", len(tokens.IDToken), tokens.Scope)
			refreshed, err := c.Refresh(ctx, tokenURL, clientID, tokens.RefreshToken)
			if err != nil || refreshed.AccessToken == tokens.AccessToken {
				t.Fatalf("refresh: %v", err)
			}

			cc, _, err := c.Token(ctx, tokenURL, clientID, tc.ccScope)
			if err != nil {
				t.Fatalf("client_credentials: %v", err)
			}
			it, err := hydraAdmin(t).Introspect(ctx, cc)
			if err != nil || !it.Active || !slices.Contains(it.Scope, tc.ccScope) {
				t.Fatalf("client_credentials token: %+v %v", it, err)
			}

			// Request objects the client did not register are refused by Hydra.
			for _, alg := range []string{"none", "RS256"} {
				bad := ar
				bad.RequestAlg = alg
				a, err := c.Authorize(ctx, bad, env.Sandbox.PKI().Pool())
				switch {
				case err != nil:
					t.Fatalf("request object %s: %v", alg, err)
				case a.Code != "":
					t.Errorf("a request object signed %s got a code", alg)
				case !strings.HasPrefix(a.Error, "invalid_request"):
					t.Errorf("request object %s: refused with %q (%s), want invalid_request_object", alg, a.Error, a.ErrorDescription)
				}
				t.Logf("request object %s: %s: %s", alg, a.Error, a.ErrorDescription)
			}
		})
	}
}
