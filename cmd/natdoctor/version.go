package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = "dev"
	commit  = ""
)

// versionInfo is the output of "natdoctor version".
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if v.Commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					v.Commit = s.Value
				}
			}
			if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v.Version = bi.Main.Version
			}
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

// versionOptions are version's flags (the global ones only).
type versionOptions struct {
	g *globalOptions
}

// newCmdVersion returns version; runF, when set, runs in place of
// runVersion.
func newCmdVersion(g *globalOptions, runF func(context.Context, *versionOptions) error) *cobra.Command {
	o := &versionOptions{g: g}
	return &cobra.Command{
		Use:   "version",
		Short: "Print natdoctor's version, commit and Go version",
		Example: `  natdoctor version
  natdoctor version --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF == nil {
				runF = runVersion
			}
			return runF(cmd.Context(), o)
		},
	}
}

// runVersion prints the version.
func runVersion(_ context.Context, o *versionOptions) error {
	v := currentVersion()
	if o.g.JSON {
		return writeJSON(o.g.IO.Out, v)
	}
	_, err := fmt.Fprintf(o.g.IO.Out, "natdoctor %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.Platform)
	return err
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONLine writes v as one line of JSON (JSON lines).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
