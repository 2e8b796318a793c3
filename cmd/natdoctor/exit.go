package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/natdoctor/natdoctor/internal/iostreams"
)

// Exit statuses. They are a public contract, documented in --help and README.
const (
	exitOK          = 0   // success; the setup is healthy
	exitProblem     = 1   // the router, server or network said no, or problems were found
	exitUsage       = 2   // bad usage or bad input
	exitInterrupted = 130 // interrupted by SIGINT or SIGTERM
)

const exitStatusHelp = `EXIT STATUS
  0    success: the command did what it was asked, or the setup is healthy
  1    the router, the server or the network said no, or problems were found
  2    bad usage or bad input (nothing was sent to the router)
  130  interrupted (SIGINT or SIGTERM)`

// usageError is bad usage or bad input: exit status 2. usage, when set, is
// printed after the message.
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf returns a usage error without a usage text.
func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errProblemsFound reports exit status 1 after a command has already
// rendered its result (findings, failed checks): nothing more is printed.
var errProblemsFound = errors.New("problems found")

// exitCode maps an error to the process exit status.
func exitCode(ctx context.Context, err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case ctx.Err() != nil:
		return exitInterrupted
	default:
		return exitProblem
	}
}

// reportExit prints err on stderr (usage after a usage error) and returns
// the exit status.
func reportExit(ctx context.Context, ios *iostreams.IOStreams, err error) int {
	code := exitCode(ctx, err)
	switch {
	case err == nil, errors.Is(err, errProblemsFound):
	case code == exitInterrupted:
		fmt.Fprintln(ios.ErrOut, "natdoctor: interrupted")
	default:
		fmt.Fprintf(ios.ErrOut, "natdoctor: %v\n", err)
		var ue *usageError
		if errors.As(err, &ue) && ue.usage != "" {
			fmt.Fprintf(ios.ErrOut, "\n%s", strings.TrimLeft(ue.usage, "\n"))
		}
	}
	return code
}
