package console

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// settingValues are a profile's settings as the form shows them.
func settingValues(p Policy) map[string]string {
	s := p.Settings
	yes := func(b bool) string {
		if b {
			return "true"
		}
		return "false"
	}
	return map[string]string{
		"signing_algs": strings.Join(s.SigningAlgs, " "), "token_endpoint_auth_methods": strings.Join(s.TokenEndpointAuthMethods, " "),
		"grant_types": strings.Join(s.GrantTypes, " "), "response_types": strings.Join(s.ResponseTypes, ", "),
		"application_types": strings.Join(s.ApplicationTypes, " "), "scopes": strings.Join(s.Scopes, " "),
		"clock_skew": time.Duration(s.ClockSkew).String(), "ssa_max_age": time.Duration(s.SSAMaxAge).String(),
		"request_max_age": time.Duration(s.RequestMaxAge).String(), "allow_delete": yes(s.AllowDelete),
		"require_active_status": yes(s.RequireActiveStatus), "multiple_registrations": yes(s.MultipleRegistrations),
		"transport_certificate": s.TransportCertificate,
		"require_par":           yes(s.RequirePAR), "pkce_required": yes(s.PKCERequired), "response_modes": strings.Join(s.ResponseModes, " "),
		"bound_tokens": yes(s.BoundTokens),
	}
}

// settingsPatch reads the form into the admin API's settings object, sending
// only what differs, so that a setting the admin did not touch is not re-validated.
func settingsPatch(c echo.Context, p Policy) (json.RawMessage, map[string]string) {
	current := settingValues(p)
	values := map[string]string{}
	patch := map[string]any{}
	for field := range current {
		v := strings.TrimSpace(posted(c, field))
		values[field] = v
		if v == current[field] {
			continue
		}
		switch field {
		case "response_types":
			patch[field] = splitList(v, ",")
		case "signing_algs", "token_endpoint_auth_methods", "grant_types", "application_types", "scopes", "response_modes":
			patch[field] = splitList(strings.ReplaceAll(v, ",", " "), " ")
		case "allow_delete", "require_active_status", "multiple_registrations", "require_par", "pkce_required", "bound_tokens":
			patch[field] = v == "true"
		default:
			patch[field] = v
		}
	}
	b, _ := json.Marshal(patch)
	return b, values
}

func splitList(v, sep string) []string {
	out := []string{}
	for _, s := range strings.Split(v, sep) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func changes(before, after Policy) []change {
	var out []change
	if before.Enabled != after.Enabled {
		out = append(out, change{"enabled", strconv.FormatBool(before.Enabled), strconv.FormatBool(after.Enabled)})
	}
	b, a := settingValues(before), settingValues(after)
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if b[k] != a[k] {
			out = append(out, change{k, b[k], a[k]})
		}
	}
	return out
}

// jsonDiff lists the members that differ between two JSON objects, flattened one level.
func jsonDiff(before, after json.RawMessage) []change {
	if len(before) == 0 && len(after) == 0 {
		return nil
	}
	flat := func(raw json.RawMessage) map[string]string {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		out := map[string]string{}
		for k, v := range m {
			var inner map[string]json.RawMessage
			if json.Unmarshal(v, &inner) == nil {
				for ik, iv := range inner {
					out[k+"."+ik] = string(iv)
				}
				continue
			}
			out[k] = string(v)
		}
		return out
	}
	b, a := flat(before), flat(after)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var out []change
	for k := range keys {
		if b[k] != a[k] {
			out = append(out, change{k, b[k], a[k]})
		}
	}
	slices.SortFunc(out, func(x, y change) int { return strings.Compare(x.Field, y.Field) })
	return out
}
