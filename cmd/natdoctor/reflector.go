package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/natdoctor/natdoctor/reflector"
)

// reflectorOptions are reflector's flags and the server they configure.
type reflectorOptions struct {
	g              *globalOptions
	listen         string
	tokenEnv       string
	allowPrivate   bool
	trustedProxies []string
	rate           float64
	burst          int

	server *reflector.Server
}

// newCmdReflector returns reflector; runF, when set, runs in place of
// runReflector.
func newCmdReflector(g *globalOptions, runF func(context.Context, *reflectorOptions) error) *cobra.Command {
	o := &reflectorOptions{g: g}
	cmd := &cobra.Command{
		Use:   "reflector",
		Short: "Run the dial-back service on a machine outside your network",
		Long: `Run the reflector: a small HTTP service for a machine outside the network (a
VPS, a friend's box). A natdoctor client asks it to dial back the client's own
public address, to check ports from the internet or to relay an FTP session.

It only ever dials the source address of the request, never an address named
in it, and refuses every source that is not a public address unless
--allow-private. Each request is bounded (ports, bytes, time, concurrency) and
rate-limited per source. With --token-env, clients must send that token.
Each dial-back is logged on stderr. It stores nothing.

Behind a reverse proxy, every request comes from the proxy: name it with
--trusted-proxy, and the client address is taken from its X-Forwarded-For
header (the rightmost entry that is not a trusted proxy). Headers from any
other peer are ignored.

--timeout does not apply: it runs until SIGINT or SIGTERM.`,
		Example: `  natdoctor reflector --listen :8021
  NATDOCTOR_TOKEN=... natdoctor reflector --listen :8021 --token-env NATDOCTOR_TOKEN
  natdoctor reflector --listen 127.0.0.1:8021 --trusted-proxy 127.0.0.1`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := parseListen(o.listen); err != nil {
				return usageErrorf("--listen %v", err)
			}
			if o.rate <= 0 || o.burst < 1 {
				return usageErrorf("--rate must be above 0 and --burst at least 1")
			}
			rf := &reflector.Server{Limits: reflector.DefaultLimits(), AllowPrivate: o.allowPrivate}
			rf.Limits.PerSourceRate, rf.Limits.PerSourceBurst = o.rate, o.burst
			for _, s := range o.trustedProxies {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					a, aerr := netip.ParseAddr(s)
					if aerr != nil {
						return usageErrorf("--trusted-proxy %q is not an IP address or prefix", s)
					}
					p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
				rf.TrustedProxies = append(rf.TrustedProxies, p.Masked())
			}
			if o.tokenEnv != "" {
				tok, ok := os.LookupEnv(o.tokenEnv)
				if !ok || tok == "" {
					return usageErrorf("environment variable %s is not set", o.tokenEnv)
				}
				rf.Token = tok
			}
			o.server = rf
			if runF == nil {
				runF = runReflector
			}
			return runF(cmd.Context(), o) // until stopped
		},
	}
	cmd.Flags().StringVar(&o.listen, "listen", ":8021", "listen on `ADDR` ([IP]:PORT)")
	cmd.Flags().StringArrayVar(&o.trustedProxies, "trusted-proxy", nil, "believe X-Forwarded-For from this reverse proxy `IP` or prefix (repeatable)")
	cmd.Flags().BoolVar(&o.allowPrivate, "allow-private", false, "also dial back sources that are not public addresses (private, loopback, link-local, shared, reserved)")
	cmd.Flags().StringVar(&o.tokenEnv, "token-env", "", "require the token in environment variable `VAR`")
	limits := reflector.DefaultLimits()
	cmd.Flags().Float64Var(&o.rate, "rate", limits.PerSourceRate, "requests per second `R` each source address may make, after --burst (a diagnose makes about 8)")
	cmd.Flags().IntVar(&o.burst, "burst", limits.PerSourceBurst, "requests `N` a source address may make at once")
	return cmd
}

// runReflector serves until ctx ends, logging each dial-back on stderr.
func runReflector(ctx context.Context, o *reflectorOptions) error {
	g := o.g
	o.server.Log = func(format string, args ...any) {
		fmt.Fprintf(g.IO.ErrOut, "%s %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	srv := o.server.HTTPServer(o.listen)
	fmt.Fprintf(g.IO.ErrOut, "reflector listening on %s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// reflectorClient is the client of --reflector URL, with the token from
// the environment variable tokenEnv when one is named; bad input is a
// usage error.
func reflectorClient(url, tokenEnv string) (*reflector.Client, error) {
	token := ""
	if tokenEnv != "" {
		t, ok := os.LookupEnv(tokenEnv)
		if !ok {
			return nil, usageErrorf("environment variable %s is not set", tokenEnv)
		}
		token = t
	}
	rc, err := reflector.NewClient(url, token)
	if err != nil {
		return nil, &usageError{err: err}
	}
	return rc, nil
}
