package policy_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/policy"
)

func TestParseClaims(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	cases := []struct {
		name    string
		payload string
		claims  map[string]string // claim → raw JSON value
		claim   string            // the claim a refusal names
		err     string            // part of the refusal's text
	}{
		{name: "claims kept raw", payload: ` {"iss":"a", "aud":["x","y"],"n":1.5,"o":{"k":null}} `,
			claims: map[string]string{"iss": `"a"`, "aud": `["x","y"]`, "n": `1.5`, "o": `{"k":null}`}},
		{name: "escaped name", payload: `{"\u0069ss":"a"}`, claims: map[string]string{"iss": `"a"`}},
		{name: "empty object", payload: `{}`, claims: map[string]string{}},
		{name: "nesting at the limit", payload: `{"x":` + deep(15) + `}`, claims: map[string]string{"x": deep(15)}},
		{name: "brackets inside strings do not nest", payload: `{"x":["` + strings.Repeat("[", 40) + `"]}`,
			claims: map[string]string{"x": `["` + strings.Repeat("[", 40) + `"]`}},

		{name: "duplicate claim", payload: `{"iss":"a","jti":"j","iss":"b"}`, claim: "iss", err: "more than once"},
		{name: "duplicate hidden by an escape", payload: `{"iss":"a","\u0069ss":"b"}`, claim: "iss", err: "more than once"},
		{name: "names differing only in case", payload: `{"iss":"a","ISS":"b"}`, claim: "iss", err: "only in case"},
		{name: "names folding alike", payload: `{"kid":"a","\u212Aid":"b"}`, claim: "\u212Aid", err: "only in case"},
		{name: "claims at the limit", payload: manyClaims(200, "c%d"), claims: claimsOf(200, "c%d")},
		{name: "one claim past the limit", payload: manyClaims(201, "c%d"), err: "more than 200 claims"},
		{name: "6,000 upper-case claims", payload: manyClaims(6000, "C%d"), err: "more than 200 claims"},
		{name: "a claim name at the limit", payload: `{"` + strings.Repeat("a", 128) + `":1}`,
			claims: map[string]string{strings.Repeat("a", 128): "1"}},
		{name: "a claim name past the limit", payload: `{"` + strings.Repeat("a", 129) + `":1}`, err: "name over 128 bytes"},
		{name: "invalid UTF-8 in a value", payload: "{\"iss\":\"\xff\xfe\"}", claim: "iss", err: "UTF-8"},
		{name: "invalid UTF-8 in a name", payload: "{\"\xff\":1}", err: "UTF-8"},
		{name: "nesting past the limit", payload: `{"x":` + deep(16) + `}`, err: "nests deeper"},
		{name: "an array", payload: `[1,2]`, err: "not a JSON object"},
		{name: "a string", payload: `"x"`, err: "not a JSON object"},
		{name: "empty", payload: ``, err: "not a JSON object"},
		{name: "whitespace", payload: `   `, err: "not a JSON object"},
		{name: "data after the object", payload: `{"a":1}{"b":2}`, err: "after its JSON object"},
		{name: "truncated", payload: `{"a":1,"b":`, claim: "b", err: "not valid JSON"},
		{name: "bad value names its claim", payload: `{"a":1,"b":tru}`, claim: "b", err: "not valid JSON"},
		{name: "bad value under a name with a slash", payload: `{"a/b~c":[1,}`, claim: "a/b~c", err: "not valid JSON"},
		{name: "control character in a string", payload: "{\"a\":\"x\ny\"}", claim: "a", err: "not valid JSON"},
		{name: "trailing comma", payload: `{"a":1,}`, err: "not valid JSON"},
		{name: "number name", payload: `{1:2}`, err: "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := policy.ParseClaims([]byte(tc.payload))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("accepted: %v", raw)
				}
				if !strings.Contains(err.Error(), tc.err) || policy.ClaimOf(err) != tc.claim {
					t.Fatalf("got %q naming %q, want %q naming %q", err, policy.ClaimOf(err), tc.err, tc.claim)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(raw) != len(tc.claims) {
				t.Fatalf("got %d claims, want %d: %v", len(raw), len(tc.claims), raw)
			}
			for name, want := range tc.claims {
				if string(raw[name]) != want {
					t.Errorf("%s = %s, want %s", name, raw[name], want)
				}
			}
		})
	}
}

// manyClaims is a payload of n claims named by format, each 1.
func manyClaims(n int, format string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"`+format+`":1`, i)
	}
	b.WriteByte('}')
	return b.String()
}

func claimsOf(n int, format string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf(format, i)] = "1"
	}
	return m
}

// BenchmarkParseClaimsUpperCase: the case check grows linearly with the claims
// (ns/op over claims stays flat), where a pairwise one grew with their square.
func BenchmarkParseClaimsUpperCase(b *testing.B) {
	for _, n := range []int{25, 50, 100, 200} {
		payload := []byte(manyClaims(n, "CLAIM%d"))
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := policy.ParseClaims(payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/claim")
		})
	}
	// The attack of the review: 6,000 upper-case names in 64 KiB, refused at the cap.
	flood := []byte(manyClaims(6000, "C%d"))
	b.Run("claims=6000", func(b *testing.B) {
		for b.Loop() {
			if _, err := policy.ParseClaims(flood); err == nil {
				b.Fatal("6,000 claims accepted")
			}
		}
	})
}

// FuzzParseClaimsAgreesWithEncodingJSON: whatever ParseClaims accepts,
// encoding/json reads as the same object, claim by claim.
func FuzzParseClaimsAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"iss":"a","aud":["x"]}`, `{"a":{"b":[1,2,{"c":"\u00e9\n"}]}}`, `{"a":1,"A":2}`,
		`{"\u0061":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":1e400}`, `{"a":-0.0,"b":true,"c":false,"d":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		raw, err := policy.ParseClaims(payload)
		if err != nil {
			return
		}
		var std map[string]json.RawMessage
		if err := json.Unmarshal(payload, &std); err != nil {
			t.Fatalf("accepted what encoding/json refuses (%v): %q", err, payload)
		}
		if len(std) != len(raw) {
			t.Fatalf("%d claims, encoding/json sees %d", len(raw), len(std))
		}
		for name, v := range std {
			var a, b any
			_ = json.Unmarshal(v, &a)
			_ = json.Unmarshal(raw[name], &b)
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			if string(ja) != string(jb) {
				t.Fatalf("claim %q: %s, encoding/json reads %s", name, raw[name], v)
			}
		}
	})
}

func TestDecodeClaims(t *testing.T) {
	type claims struct {
		Aud     policy.StringList   `json:"aud"`
		Exp     *policy.NumericDate `json:"exp"`
		Version policy.LooseString  `json:"software_version"`
		Name    string              `json:"client_name"`
		Flag    bool                `json:"flag"`
	}
	cases := []struct {
		name    string
		payload string
		check   func(c claims) bool
		claim   string // the claim a refusal names
	}{
		{"aud as a string", `{"aud":"a"}`, func(c claims) bool { return len(c.Aud) == 1 && c.Aud[0] == "a" }, ""},
		{"aud as an array, empty strings dropped", `{"aud":["a","","b"]}`, func(c claims) bool { return len(c.Aud) == 2 && c.Aud[1] == "b" }, ""},
		{"aud empty array", `{"aud":[]}`, func(c claims) bool { return c.Aud != nil && len(c.Aud) == 0 }, ""},
		{"aud empty string", `{"aud":""}`, func(c claims) bool { return c.Aud == nil }, ""},
		{"aud null", `{"aud":null}`, func(c claims) bool { return c.Aud == nil }, ""},
		{"escaped strings", `{"aud":["\u0061\n"],"client_name":"a\"b"}`, func(c claims) bool { return c.Aud[0] == "a\n" && c.Name == `a"b` }, ""},
		{"exp with a fraction", `{"exp":1700000000.5}`, func(c claims) bool { return c.Exp != nil && c.Exp.UnixMilli() == 1700000000500 }, ""},
		{"version as a number", `{"software_version":1.50}`, func(c claims) bool { return c.Version == "1.50" }, ""},
		{"version as a string", `{"software_version":"2"}`, func(c claims) bool { return c.Version == "2" }, ""},
		{"bool", `{"flag":true}`, func(c claims) bool { return c.Flag }, ""},
		{"unknown claims ignored", `{"other":{"x":[1]},"CLIENT_NAME":"x"}`, func(c claims) bool { return c.Name == "" }, ""},

		{"aud a number", `{"aud":1}`, nil, "aud"},
		{"aud nested arrays", `{"aud":[["a"]]}`, nil, "aud"},
		{"aud array of numbers", `{"aud":["a",2]}`, nil, "aud"},
		{"exp a string", `{"exp":"soon"}`, nil, "exp"},
		{"exp negative", `{"exp":-1}`, nil, "exp"},
		{"version an object", `{"software_version":{}}`, nil, "software_version"},
		{"name a number", `{"client_name":5}`, nil, "client_name"},
		{"flag a string", `{"flag":"yes"}`, nil, "flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c claims
			_, err := policy.DecodeClaims([]byte(tc.payload), &c)
			if tc.check == nil {
				if err == nil || policy.ClaimOf(err) != tc.claim {
					t.Fatalf("got %v, want a refusal naming %s", err, tc.claim)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
}

// The answer's metadata is what encoding/json makes of ClientMetadata, field for
// field, without the round trip through JSON.
func TestResponseBaseMatchesJSON(t *testing.T) {
	cases := []policy.ClientMetadata{
		{},
		{RedirectURIs: policy.StringList{"https://a.example/cb"}, Scope: "openid accounts", ClientName: "Acme"},
		{GrantTypes: policy.StringList{}, ResponseTypes: policy.StringList{"code", "code id_token"}, TokenEndpointAuthMethod: "private_key_jwt",
			TokenEndpointAuthSigningAlg: "PS256", Contacts: policy.StringList{"a@b.example"}, SoftwareID: "s1", TLSClientAuthSubjectDN: "CN=x"},
	}
	for i, m := range cases {
		got, _ := json.Marshal(policy.ResponseBase(&policy.Registration{Metadata: m}))
		want := map[string]any{}
		b, _ := json.Marshal(m)
		_ = json.Unmarshal(b, &want)
		want["client_id"], want["client_id_issued_at"], want["software_statement"] = "", int64(-62135596800), ""
		wantJSON, _ := json.Marshal(want)
		if string(got) != string(wantJSON) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, wantJSON)
		}
	}
}
