package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/natdoctor/natdoctor/internal/iostreams"
	"github.com/natdoctor/natdoctor/probe"
	"github.com/natdoctor/natdoctor/report"
)

// credFlags carry FTP credentials. The password never comes from argv.
type credFlags struct {
	user         string
	passwordEnv  string
	passwordFile string
	anonymous    bool
	tls          string
}

func (c *credFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.user, "user", "", "FTP user `NAME` to log in as")
	fs.StringVar(&c.passwordEnv, "password-env", "", "read the password from environment variable `VAR`")
	fs.StringVar(&c.passwordFile, "password-file", "", "read the password from the first line of `FILE`")
	fs.BoolVar(&c.anonymous, "anonymous", false, "log in anonymously when no --user is given")
	fs.StringVar(&c.tls, "tls", "auto", "explicit FTPS `auto|off|require`: auto uses TLS when the server offers AUTH TLS")
}

// tlsMode returns --tls as a probe.TLSMode.
func (c *credFlags) tlsMode() (probe.TLSMode, error) {
	m, err := probe.ParseTLSMode(c.tls)
	if err != nil {
		return "", usageErrorf("--tls: %v", err)
	}
	return m, nil
}

// completeTLS completes the values of --tls.
func completeTLS(cmd *cobra.Command) {
	_ = cmd.RegisterFlagCompletionFunc("tls", cobra.FixedCompletions([]string{"auto", "off", "require"}, cobra.ShellCompDirectiveNoFileComp))
}

// maxPasswordFile bounds a password file.
const maxPasswordFile = 4096

// password returns the password from the environment, a file, or a prompt
// on the terminal (no echo). It returns "" when no user is given.
func (c *credFlags) password(ios *iostreams.IOStreams) (string, error) {
	if c.user == "" {
		if c.passwordEnv != "" || c.passwordFile != "" {
			return "", usageErrorf("--password-env and --password-file need --user")
		}
		return "", nil
	}
	switch {
	case c.passwordEnv != "" && c.passwordFile != "":
		return "", usageErrorf("give one of --password-env and --password-file")
	case c.passwordEnv != "":
		pw, ok := os.LookupEnv(c.passwordEnv)
		if !ok {
			return "", usageErrorf("environment variable %s is not set", c.passwordEnv)
		}
		return pw, nil
	case c.passwordFile != "":
		f, err := os.Open(c.passwordFile)
		if err != nil {
			return "", usageErrorf("password file: %v", err)
		}
		defer f.Close()
		line, err := bufio.NewReader(io.LimitReader(f, maxPasswordFile)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", usageErrorf("password file %s: %v", c.passwordFile, err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	case ios.IsStdinTTY():
		fmt.Fprintf(ios.ErrOut, "FTP password for %s: ", c.user)
		pw, err := ios.ReadPassword()
		fmt.Fprintln(ios.ErrOut)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		return string(pw), nil
	}
	return "", usageErrorf("--user %s needs a password: use --password-env VAR or --password-file FILE (no terminal to prompt on)", c.user)
}

// probeTimeout is the default budget of probe ftp: a walk-through with
// samples waits out a few data-connection timeouts.
const probeTimeout = 30 * time.Second

// probeFTPOptions are probe ftp's flags and what they parse into.
type probeFTPOptions struct {
	g         *globalOptions
	creds     credFlags
	pasv      string
	ftpConfig string
	samples   int

	target   string           // HOST:PORT
	expected *probe.PortRange // --pasv or --ftp-config's; nil: not known
	walk     probe.FTPOptions // credentials, samples, TLS mode
}

func newCmdProbe(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Check a server the way its clients do",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newCmdProbeFTP(g, nil))
	return cmd
}

// newCmdProbeFTP returns probe ftp; runF, when set, runs in place of
// runProbeFTP.
func newCmdProbeFTP(g *globalOptions, runF func(context.Context, *probeFTPOptions) error) *cobra.Command {
	o := &probeFTPOptions{g: g}
	cmd := &cobra.Command{
		Use:   "ftp HOST[:PORT]",
		Short: "Walk through an FTP session and show what strict clients see",
		Long: `Connect to an FTP server (port 21 unless given) and walk through what a client
does: greeting, FEAT (is AUTH TLS offered?), explicit FTPS (--tls), login,
PWD (and whether the session can leave its home for /etc or /usr), PASV and
EPSV, a data connection to the advertised address and one to the address
dialled, LIST, QUIT. With --samples N it asks for N more passive ports and
tries each. The server's TLS certificate is shown, not enforced.

Run it from outside against the router's public address, or from inside
against the LAN address. The password comes from --password-env, --password-file
or a prompt, and is never printed.

The walk is judged with diagnose's rules for its walk on the LAN: findings
follow the steps, and the exit status is 1 when one is an error. Its
default --timeout is 30s.`,
		Example: `  FTP_PASSWORD=... natdoctor probe ftp 203.0.113.7 --user alice --password-env FTP_PASSWORD --pasv 42000-42010
  natdoctor probe ftp 10.0.1.2 --anonymous --samples 11 --json`,
		Args: exactArgs(1, "a HOST or HOST:PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if o.target, err = parseTarget(args[0], 21); err != nil {
				return &usageError{err: err}
			}
			var expected *probe.PortRange
			if o.pasv != "" {
				r, err := probe.ParsePortRange(o.pasv)
				if err != nil {
					return &usageError{err: err}
				}
				expected = &r
			} else if o.ftpConfig != "" {
				c, err := probe.ReadFTPConfig(o.ftpConfig)
				if err != nil {
					return usageErrorf("--ftp-config: %v", err)
				}
				expected = c.Passive
			}
			if o.samples < 0 || o.samples > 64 {
				return usageErrorf("--samples must be 0-64")
			}
			mode, err := o.creds.tlsMode()
			if err != nil {
				return err
			}
			pw, err := o.creds.password(g.IO)
			if err != nil {
				return err
			}
			o.expected = expected
			o.walk = probe.FTPOptions{User: o.creds.user, Password: pw, Anonymous: o.creds.anonymous,
				Expected: expected, Samples: o.samples, TLS: mode}
			ctx, cancel := g.budgetAtLeast(cmd, probeTimeout)
			defer cancel()
			if runF == nil {
				runF = runProbeFTP
			}
			return runF(ctx, o)
		},
	}
	o.creds.register(cmd.Flags())
	cmd.Flags().StringVar(&o.pasv, "pasv", "", "the server's passive `RANGE`, e.g. 42000-42010")
	cmd.Flags().StringVar(&o.ftpConfig, "ftp-config", "", "read the passive range from this server configuration `PATH`")
	cmd.Flags().IntVar(&o.samples, "samples", 0, "`N` extra PASV commands to sample the passive ports (0-64)")
	completeTLS(cmd)
	return cmd
}

// runProbeFTP walks the server, shows the steps, then the findings.
func runProbeFTP(ctx context.Context, o *probeFTPOptions) error {
	g := o.g
	res := probe.DialAndCheckFTP(ctx, o.target, o.walk)
	judged := report.JudgeWalk(res, o.expected)
	if g.JSON {
		if err := writeJSON(g.IO.Out, probeFTPOutput{res, judged}); err != nil {
			return err
		}
	} else {
		printFTP(g.IO.Out, res, o.expected, g.Verbose)
		if len(judged.Findings) > 0 {
			if err := report.WriteFindings(g.IO.Out, judged.Findings); err != nil {
				return err
			}
		}
	}
	if judged.HasErrors() {
		return errProblemsFound
	}
	return nil
}

// probeFTPOutput is probe ftp's JSON: the walk's own fields, then the
// findings diagnose's rules make of it.
type probeFTPOutput struct {
	*probe.FTPResult
	*report.WalkReport
}
