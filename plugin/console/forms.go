package console

import (
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Form bodies are capped before a byte is parsed, and only urlencoded forms are
// read: echo's FormValue would otherwise parse a multipart body of any size
// (32 MiB of it in memory, the rest in temporary files) for anyone who can
// reach the sign-in page. The console's own forms are all urlencoded.
const (
	maxSignInForm = 4 << 10  // a token, with room to spare
	maxForm       = 64 << 10 // as the admin API's bodies
	// maxDryRunForm holds a request JWT as large as the API takes (maxDryRunJWT)
	// and a PEM certificate beside it, percent-encoded.
	maxDryRunForm = 128 << 10
	maxDryRunJWT  = 64 << 10
)

// formError is a form refused before it was read: 413 or 415.
type formError struct {
	status int
	msg    string
}

// readForm reads a POST's form through a cap of limit bytes. Afterwards
// posted answers from what was read and parses nothing more.
func readForm(c echo.Context, limit int64) *formError {
	r := c.Request()
	mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationForm {
		return &formError{http.StatusUnsupportedMediaType, "the console takes forms as application/x-www-form-urlencoded only"}
	}
	tooBig := &formError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the form is over %d KiB", limit>>10)}
	if r.ContentLength > limit {
		return tooBig // refused unread; the server closes the connection rather than drain it
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	var mbe *http.MaxBytesError
	switch err := r.ParseForm(); {
	case errors.As(err, &mbe):
		return tooBig
	case err != nil:
		return &formError{http.StatusBadRequest, "the form could not be read: " + err.Error()}
	}
	return nil
}

// formLimit is the cap of a signed-in POST's form.
func formLimit(c echo.Context) int64 {
	if c.Path() == "/console/dry-run" {
		return maxDryRunForm
	}
	return maxForm
}

// posted is a field of the POST's body, never of the URL's query: a token or
// CSRF value in a URL is written to every proxy's and browser's history.
func posted(c echo.Context, name string) string { return c.Request().PostFormValue(name) }
