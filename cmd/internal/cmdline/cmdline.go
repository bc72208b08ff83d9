// Package cmdline is what obdcr's and obdcr-sandbox's command lines share: a
// command's flags parsed in one place, and one rule for what is printed where and
// the exit code, as Go's own tools do: --help is asked-for usage (stdout, 0), a
// flag the command does not take or arguments it cannot run with are a usage error
// (stderr, 2), and a command that ran and failed exits 1.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// UsageError is a command line the command cannot run; it is printed with the
// command's usage, and the exit code is 2.
type UsageError string

func (u UsageError) Error() string { return string(u) }

// ErrReported: the command has said what went wrong itself (doctor's findings,
// serve's log), so it exits 1 without another line.
var ErrReported = errors.New("reported")

// NewFlagSet is a command's FlagSet, named as its messages begin ("obdcr doctor"),
// printing nothing itself: Run prints.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// Run parses args with fs, on which the command has declared its flags, runs
// the command with the positional arguments, and returns the exit code.
func Run(fs *flag.FlagSet, args []string, usage string, run func(args []string) error, stdout, stderr io.Writer) int {
	err := fs.Parse(args)
	if err == nil {
		err = run(fs.Args())
	} else if !errors.Is(err, flag.ErrHelp) {
		err = UsageError(err.Error())
	}
	var bad UsageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		PrintUsage(stdout, usage, fs)
		return 0
	case errors.As(err, &bad):
		fmt.Fprintf(stderr, "%s: %s\n\n", fs.Name(), bad)
		PrintUsage(stderr, usage, fs)
		return 2
	case errors.Is(err, ErrReported):
		return 1
	default:
		fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), err)
		return 1
	}
}

// PrintUsage writes a command's usage text, then its flags with their defaults.
func PrintUsage(w io.Writer, usage string, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// IsHelp reports whether args[0] asks for help: -h, -help, --help or help.
func IsHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help")
}
