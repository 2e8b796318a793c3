// Command natdoctor makes a server at home reachable from the internet and
// says, in plain words, why it is not: it talks NAT-PMP, PCP and UPnP IGD to
// the router, probes the FTP server from inside and (through a reflector)
// from outside, and reports what is wrong and how to fix it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/natdoctor/natdoctor/internal/iostreams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], iostreams.System())
	stop()
	os.Exit(code)
}

// run executes one natdoctor command line and returns its exit status.
func run(ctx context.Context, args []string, ios *iostreams.IOStreams, opts ...func(*globalOptions)) int {
	root := newCmdRoot(ios, opts...)
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	err := root.ExecuteContext(ctx)
	return reportExit(ctx, ios, err)
}
