package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/internal/doctor"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// diagnoseTimeout is diagnose's default budget: long enough for a slow
// router and a few dial-back timeouts.
const diagnoseTimeout = 30 * time.Second

// diagnoseOptions are diagnose's flags and what they parse into.
type diagnoseOptions struct {
	g            *globalOptions
	server       string
	ftpPort      uint16
	publicPort   uint16
	pasv         string
	ftpConfig    string
	reflectors   []string
	reflTokenEnv string
	ipv6         bool
	server6      string
	format       string
	creds        credFlags

	// Parsed: what to check, and the output format (text, json, markdown).
	check  doctor.Options
	output string
}

// newCmdDiagnose returns diagnose; runF, when set, runs in place of
// runDiagnose (tests check the parsing with it).
func newCmdDiagnose(g *globalOptions, runF func(context.Context, *diagnoseOptions) error) *cobra.Command {
	o := &diagnoseOptions{g: g}
	cmd := &cobra.Command{
		Use:   "diagnose",
		Short: "Check everything and say what is wrong, why, and how to fix it",
		Long: `Check the router (NAT-PMP, PCP, UPnP IGD, external address), the mappings of
the FTP control port and the passive range, the FTP server on the LAN and,
with --reflector, the view from outside: whether port 21 from the internet
reaches this server (and not the router's default host), whether every
passive port carries a connection, and whether this host is the default host.

With --ipv6 the server is checked over IPv6 too, at this host's stable global
IPv6 address (never a temporary, privacy one): the walk on the LAN (EPSV) and,
through a reflector's IPv6 address, from outside. The router does not
translate IPv6, it filters; the verdict is then given per address family.
Give --reflector twice, an IPv4 and an IPv6 URL, or once with a name that has
both addresses.

Prints a verdict, the path a connection from outside takes (each hop passed,
failed or not checked), then the findings with their fixes. Checks that
could not run are listed as not checked, never as passed.

Exits 0 when no finding is an error, 1 when one is, 2 for bad usage.
Its default --timeout is 30s.

Finding codes (README explains each):
` + wrapWords(strings.Join(report.Codes(), ", "), 78) + `.`,
		Example: `  natdoctor diagnose --pasv 42000-42010
  FTP_PW=... natdoctor diagnose --reflector http://vps.example.org:8021 --user alice --password-env FTP_PW
  natdoctor diagnose --ftp-config /etc/pure-ftpd/conf --format markdown
  natdoctor diagnose --ipv6 --reflector http://203.0.113.7:8021 --reflector http://[2001:db8::7]:8021`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.parse(); err != nil {
				return err
			}
			ctx, cancel := g.budgetAtLeast(cmd, diagnoseTimeout)
			defer cancel()
			if runF == nil {
				runF = runDiagnose
			}
			err := runF(ctx, o)
			if ctx.Err() != nil && cmd.Context().Err() != nil {
				return cmd.Context().Err() // interrupted, not out of time
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "the FTP server's LAN `IP` (default: this host)")
	f.Uint16Var(&o.ftpPort, "ftp-port", 21, "the FTP control `PORT`")
	f.Uint16Var(&o.publicPort, "public-port", 0, "the control `PORT` clients use from outside, when the router maps another one to --ftp-port (e.g. 2121)")
	f.StringVar(&o.pasv, "pasv", "", "the server's passive `RANGE`, e.g. 42000-42010")
	f.StringVar(&o.ftpConfig, "ftp-config", "", "read the passive range and limits from this server configuration `PATH` (default: detect)")
	f.StringArrayVar(&o.reflectors, "reflector", nil, "`URL` of a natdoctor reflector outside the network (twice with --ipv6: its IPv4 and its IPv6 URL)")
	f.BoolVar(&o.ipv6, "ipv6", false, "check over IPv6 too, and give the verdict per address family")
	f.StringVar(&o.server6, "server6", "", "the FTP server's global IPv6 `ADDRESS` (with --ipv6; default: this host's stable one)")
	f.StringVar(&o.reflTokenEnv, "reflector-token-env", "", "the reflector's token is in environment variable `VAR`")
	f.StringVar(&o.format, "format", "text", "output format `text|json|markdown`")
	o.creds.register(f)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json", "markdown"}, cobra.ShellCompDirectiveNoFileComp))
	completeTLS(cmd)
	return cmd
}

// parse checks the flags and turns them into what to check; bad input
// is a usage error, before anything is sent.
func (o *diagnoseOptions) parse() error {
	g := o.g
	o.output = o.format
	if g.JSON {
		o.output = "json"
	}
	switch o.output {
	case "text", "json", "markdown":
	default:
		return usageErrorf("--format %q: want text, json or markdown", o.format)
	}
	opts := doctor.Options{NAT: g.natConfig(), FTPPort: o.ftpPort, PublicPort: o.publicPort}
	if o.ftpPort == 0 {
		return usageErrorf("--ftp-port must be 1-65535")
	}
	if o.server != "" {
		a, err := netip.ParseAddr(o.server)
		if err != nil || !a.Is4() {
			return usageErrorf("--server %q is not an IPv4 address (an IPv6 one goes in --server6, with --ipv6)", o.server)
		}
		opts.Server = a
	}
	if o.pasv != "" {
		r, err := probe.ParsePortRange(o.pasv)
		if err != nil {
			return &usageError{err: err}
		}
		opts.Passive = &r
	}
	if o.ftpConfig != "" {
		c, err := probe.ReadFTPConfig(o.ftpConfig)
		if err != nil {
			return usageErrorf("--ftp-config: %v", err)
		}
		opts.Config = c
	}
	if err := o.parseReflectors(&opts); err != nil {
		return err
	}
	if o.server6 != "" {
		if !o.ipv6 {
			return usageErrorf("--server6 needs --ipv6")
		}
		a, err := netip.ParseAddr(o.server6)
		switch {
		case err != nil || !a.Is6() || a.Is4In6():
			return usageErrorf("--server6 %q is not an IPv6 address", o.server6)
		case a.IsLinkLocalUnicast() || a.Zone() != "":
			return usageErrorf("--server6 %s is a link-local address: give the server's global IPv6 address, the one clients use", o.server6)
		}
		opts.Server6 = a
	}
	opts.IPv6 = o.ipv6
	mode, err := o.creds.tlsMode()
	if err != nil {
		return err
	}
	pw, err := o.creds.password(g.IO)
	if err != nil {
		return err
	}
	opts.FTP = probe.FTPOptions{User: o.creds.user, Password: pw, Anonymous: o.creds.anonymous, TLS: mode}
	o.check = opts
	return nil
}

// parseReflectors sorts the --reflector URLs by family: an address
// literal is used for its family, a name for IPv4 and, with --ipv6, for
// IPv6 too (each client held to its family).
func (o *diagnoseOptions) parseReflectors(opts *doctor.Options) error {
	if len(o.reflectors) > 2 {
		return usageErrorf("--reflector given %d times: give at most an IPv4 and an IPv6 URL", len(o.reflectors))
	}
	for _, u := range o.reflectors {
		rc, err := reflectorClient(u, o.reflTokenEnv)
		if err != nil {
			return err
		}
		a, err := netip.ParseAddr(strings.Trim(rc.Base.Hostname(), "[]"))
		literal := err == nil
		v6 := literal && a.Is6() && !a.Is4In6()
		switch {
		case v6 && !o.ipv6:
			return usageErrorf("--reflector %s is an IPv6 address: add --ipv6, or give the reflector's IPv4 URL", u)
		case v6 && opts.Reflector6 != nil, !v6 && literal && opts.Reflector != nil:
			return usageErrorf("--reflector: two URLs of one address family; give an IPv4 and an IPv6 one")
		case v6:
			opts.Reflector6 = rc
		case literal:
			opts.Reflector = rc
		default: // a name
			if len(o.reflectors) > 1 {
				return usageErrorf("--reflector %s is a name: give it once (it is used for both families), or give two address URLs", u)
			}
			opts.Reflector = rc.Over("tcp4", netip.Addr{})
			if o.ipv6 {
				opts.Reflector6 = rc.Over("tcp6", netip.Addr{})
			}
		}
	}
	return nil
}

// runDiagnose gathers, builds the report, renders it, and says with its
// error whether a finding is an error.
func runDiagnose(ctx context.Context, o *diagnoseOptions) error {
	g, opts := o.g, o.check
	if g.IO.IsStderrTTY() && !g.Verbose {
		opts.Progress = func(step string) { fmt.Fprintf(g.IO.ErrOut, "\r\x1b[K%s…", step) }
		defer fmt.Fprint(g.IO.ErrOut, "\r\x1b[K")
	} else if g.Verbose {
		opts.Progress = func(step string) { g.tracef("%s", step) }
	}
	rep := report.Build(doctor.Gather(ctx, opts))
	if opts.Progress != nil && g.IO.IsStderrTTY() && !g.Verbose {
		fmt.Fprint(g.IO.ErrOut, "\r\x1b[K")
	}
	var err error
	switch o.output {
	case "json":
		err = rep.WriteJSON(g.IO.Out)
	case "markdown":
		err = rep.WriteMarkdown(g.IO.Out)
	default:
		err = rep.WriteText(g.IO.Out, g.IO.ColorEnabled())
	}
	if err != nil {
		return err
	}
	if rep.HasErrors() {
		return errProblemsFound
	}
	return nil
}
