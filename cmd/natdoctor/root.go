package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/internal/iostreams"
	"github.com/natdoctor/natdoctor/nat"
)

// defaultTimeout is the default time budget of one command (--timeout).
const defaultTimeout = 5 * time.Second

// patientDiscovery is how long diagnose's and the mapping commands'
// discovery waits for a router that has answered no protocol yet
// (nat.Config.PatientTimeout). discover gives a silent gateway its verdict
// in about 1.5 s; the others concluded "not available" from one short
// window for routers that were merely slow (a busy router, a loaded
// machine). A router that answers one protocol costs nothing more.
const patientDiscovery = 5 * time.Second

// globalOptions are the flags every command shares.
type globalOptions struct {
	IO      *iostreams.IOStreams
	Gateway netip.Addr    // from --gateway; invalid means "discover"
	Timeout time.Duration // the whole command's budget
	JSON    bool
	Verbose bool

	// Gateway6 is the router's IPv6 address from --gateway6 (invalid:
	// the IPv6 default route's, unless --gateway was given).
	Gateway6 netip.Addr

	gatewayFlag  string
	gateway6Flag string
	noColor      bool
	// configure adjusts the router configuration; tests use it to keep
	// SSDP on loopback.
	configure func(*nat.Config)
	// requests counts UPnP requests sent to the router (reported with -v).
	requests atomic.Int64
	// start is when the command began; trace lines say how long after.
	start time.Time
}

// budget returns a context that ends when the command's time budget is spent.
func (g *globalOptions) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, g.Timeout)
}

// budgetAtLeast is budget, with a longer default for commands that need
// it (diagnose, probe) when --timeout was not given.
func (g *globalOptions) budgetAtLeast(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	t := g.Timeout
	if !cmd.Flags().Changed("timeout") && d > t {
		t = d
	}
	return context.WithTimeout(cmd.Context(), t)
}

// tracef writes a protocol trace line on stderr when --verbose is set.
func (g *globalOptions) tracef(format string, args ...any) {
	if g.Verbose {
		fmt.Fprintf(g.IO.ErrOut, "trace: %s [+%v]\n", fmt.Sprintf(format, args...), time.Since(g.start).Round(time.Millisecond))
	}
}

func newCmdRoot(ios *iostreams.IOStreams, opts ...func(*globalOptions)) *cobra.Command {
	g := &globalOptions{IO: ios, start: time.Now()}
	for _, o := range opts {
		o(g)
	}
	root := &cobra.Command{
		Use:   "natdoctor",
		Short: "Make a home server reachable from the internet, and say why it is not",
		Long: `natdoctor makes a server at home reachable from the internet and tells you,
in plain words, why it is not. It talks NAT-PMP, PCP and UPnP IGD to the
router, maps the FTP control port and the passive range as one operation,
and probes the server from inside and, through a reflector, from outside.

` + exitStatusHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.complete()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	pf := root.PersistentFlags()
	pf.StringVar(&g.gatewayFlag, "gateway", "", "use this router `IP` instead of discovering the default gateway")
	pf.StringVar(&g.gateway6Flag, "gateway6", "", "the router's IPv6 `ADDRESS` (default: the IPv6 default route's next hop; none when --gateway is given)")
	pf.DurationVar(&g.Timeout, "timeout", defaultTimeout, "time budget `D` of the whole command")
	pf.BoolVar(&g.JSON, "json", false, "write machine-readable JSON on stdout")
	pf.BoolVarP(&g.Verbose, "verbose", "v", false, "trace protocol exchanges on stderr")
	pf.BoolVar(&g.noColor, "no-color", false, "disable colour (NO_COLOR is honoured too)")

	// Help and usage show each command's own --timeout default.
	help, usage := root.HelpFunc(), root.UsageFunc()
	root.SetHelpFunc(func(c *cobra.Command, args []string) { showTimeoutDefault(c); help(c, args) })
	root.SetUsageFunc(func(c *cobra.Command) error { showTimeoutDefault(c); return usage(c) })

	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{err: err, usage: cmd.UsageString()}
	})

	root.AddCommand(
		newCmdVersion(g, nil),
		newCmdDiagnose(g, nil),
		newCmdCheck(g, nil),
		newCmdDiscover(g, nil),
		newCmdList(g, nil),
		newCmdAdd(g, nil),
		newCmdRemove(g, nil),
		newCmdKeep(g, nil),
		newCmdProbe(g),
		newCmdReflector(g, nil),
		newCmdMan(g, nil),
	)
	return root
}

// timeoutDefaults is what --timeout means for the commands where it is not
// defaultTimeout, by command path; their help pages say so.
var timeoutDefaults = map[string]string{
	"natdoctor diagnose":  diagnoseTimeout.String(),
	"natdoctor probe ftp": probeTimeout.String(),
	"natdoctor add":       "7s + 0.3s per mapping",
	"natdoctor list":      listBudget.String(),
	"natdoctor remove":    "7s + 0.3s per mapping",
	"natdoctor keep":      "5s per router session; keep runs until stopped",
	"natdoctor reflector": "not used: runs until stopped",
	"natdoctor version":   "not used",
}

// showTimeoutDefault sets the --timeout default that c's help shows.
func showTimeoutDefault(c *cobra.Command) {
	f := c.Root().PersistentFlags().Lookup("timeout")
	if f == nil {
		return
	}
	f.DefValue = defaultTimeout.String()
	if d, ok := timeoutDefaults[c.CommandPath()]; ok {
		f.DefValue = d
	}
}

// complete validates the global flags once they are parsed.
func (g *globalOptions) complete() error {
	if g.noColor {
		g.IO.DisableColor()
	}
	if g.Timeout <= 0 {
		return usageErrorf("--timeout must be positive, got %v", g.Timeout)
	}
	if g.gatewayFlag != "" {
		addr, err := netip.ParseAddr(g.gatewayFlag)
		switch {
		case err == nil && addr.Is6() && !addr.Is4In6():
			return usageErrorf("--gateway %s is an IPv6 address: give the router's IPv4 address (NAT-PMP, PCP and UPnP discovery run over IPv4; the router's IPv6 address comes from the IPv6 default route)", g.gatewayFlag)
		case err != nil || !addr.Is4():
			return usageErrorf("--gateway %q is not an IPv4 address", g.gatewayFlag)
		}
		g.Gateway = addr
	}
	if g.gateway6Flag != "" {
		addr, err := netip.ParseAddr(g.gateway6Flag)
		switch {
		case err != nil || !addr.Is6() || addr.Is4In6():
			return usageErrorf("--gateway6 %q is not an IPv6 address", g.gateway6Flag)
		case addr.IsLinkLocalUnicast() && addr.Zone() == "":
			return usageErrorf("--gateway6 %s is link-local: add the interface, e.g. %s%%eth0", g.gateway6Flag, g.gateway6Flag)
		}
		g.Gateway6 = addr
	}
	return nil
}

// noArgs rejects positional arguments, naming unknown subcommands.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return &usageError{err: fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath()), usage: cmd.UsageString()}
	}
	return &usageError{err: fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " ")), usage: cmd.UsageString()}
}

// minArgs requires at least n positional arguments.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return &usageError{err: fmt.Errorf("%s needs %s", cmd.CommandPath(), what), usage: cmd.UsageString()}
		}
		return nil
	}
}

// exactArgs requires exactly n positional arguments.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{err: fmt.Errorf("%s needs %s", cmd.CommandPath(), what), usage: cmd.UsageString()}
		}
		return nil
	}
}

// wrapWords breaks s at spaces into lines of at most width characters,
// for help texts.
func wrapWords(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(w) > width {
				b.WriteString("\n")
				n = 0
			} else {
				b.WriteString(" ")
				n++
			}
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// ipv6Router is the router's IPv6 address: --gateway6, else the IPv6
// default route's next hop, but not when --gateway named the router: the
// routing table's IPv6 router may be another machine than that one.
func (g *globalOptions) ipv6Router() (netip.Addr, error) {
	switch {
	case g.Gateway6.IsValid():
		return g.Gateway6, nil
	case g.Gateway.IsValid():
		return netip.Addr{}, fmt.Errorf("--gateway %s names the router: give its IPv6 address with --gateway6 too", g.Gateway)
	}
	return nat.DefaultGateway6()
}
