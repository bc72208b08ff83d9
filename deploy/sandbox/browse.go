package sandbox

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// browse follows a front-channel flow as a browser does: redirects, and pages
// with a form to post (the form_post response mode, and the login and consent
// app's pages, submitted as they are filled in). It returns the
// parameters that reached redirectURI (query, fragment or posted form), or nil
// and the last response when the flow ended elsewhere.
func browse(browser *http.Client, req *http.Request, redirectURI string, landed **url.URL, trace func(method, url string)) (url.Values, *http.Response, error) {
	for range 10 {
		resp, err := browser.Do(req)
		if err != nil {
			return nil, nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if *landed != nil {
			// The hybrid flow answers in the fragment, the code flow in the query.
			// The fragment is parsed as sent: decoded first, a ';' or '&' inside
			// a value would split it.
			params := (*landed).Query()
			if (*landed).Fragment != "" {
				params, _ = url.ParseQuery((*landed).EscapedFragment())
			}
			return params, resp, nil
		}
		action, fields, ok := postedForm(body)
		if resp.StatusCode != http.StatusOK || !ok {
			return nil, resp, nil
		}
		// A form's action may be relative to its page (the login and consent app's are).
		to, err := resp.Request.URL.Parse(action)
		if err != nil {
			return nil, resp, nil
		}
		if strings.HasPrefix(to.String(), redirectURI) {
			trace(http.MethodPost, to.String())
			return fields, resp, nil
		}
		next, err := http.NewRequestWithContext(req.Context(), http.MethodPost, to.String(), strings.NewReader(fields.Encode()))
		if err != nil {
			return nil, nil, err
		}
		next.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		trace(next.Method, next.URL.String())
		req = next
	}
	return nil, nil, fmt.Errorf("more than 10 posted forms")
}

// postedForm reads the first form with method post and its inputs from a page.
func postedForm(body []byte) (string, url.Values, bool) {
	doc, err := html.Parse(strings.NewReader(string(body)))
	if err != nil {
		return "", nil, false
	}
	var action string
	var found bool
	fields := url.Values{}
	var walk func(n *html.Node, inForm bool)
	walk = func(n *html.Node, inForm bool) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				if found || !strings.EqualFold(attr(n, "method"), "post") {
					return
				}
				found, inForm, action = true, true, attr(n, "action")
			case "input":
				if inForm && attr(n, "name") != "" {
					fields.Add(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inForm)
		}
	}
	walk(doc, false)
	return action, fields, found
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
