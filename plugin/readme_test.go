package plugin_test

import (
	"os"
	"strings"
	"testing"

	"github.com/obdcr/obdcr/plugin"
)

// The README's configuration table is the contract users script against; it must
// list every variable the code reads, with the same default.
func TestREADMEListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, v := range plugin.Variables() {
		def := "`" + v.Default + "`"
		switch {
		case v.Required:
			def = "required"
		case v.Default == "":
			def = "empty"
		}
		row := "| `" + v.Name + "` | " + def + " | " + v.Help + " |"
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the row:\n%s", row)
		}
	}
}
