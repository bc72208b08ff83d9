package plugin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/hydra"
)

// TestDescribeStrays: a finding names at most maxListedStrays clients, and
// says how many more there are.
func TestDescribeStrays(t *testing.T) {
	for _, n := range []int{1, maxListedStrays, maxListedStrays + 5} {
		strays := make([]stray, n)
		for i := range strays {
			strays[i] = stray{client: hydra.Client{ID: fmt.Sprintf("client-%d", i)}, why: []string{"why"}}
		}
		got := describeStrays(strays)
		named := strings.Count(got, "client-")
		if want := min(n, maxListedStrays); named != want {
			t.Errorf("%d strays: %d named, want %d", n, named, want)
		}
		if more := n - maxListedStrays; more > 0 != strings.HasSuffix(got, fmt.Sprintf("and %d more", more)) {
			t.Errorf("%d strays: %q does not end in how many more", n, got)
		}
	}
}
