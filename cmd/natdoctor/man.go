package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manDate is the date written into man pages: fixed, so that the pages do
// not change from one run to the next (SOURCE_DATE_EPOCH overrides it).
var manDate = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// manOptions are man's arguments.
type manOptions struct {
	g    *globalOptions
	dir  string
	root *cobra.Command // the tree to document
}

// newCmdMan returns man; runF, when set, runs in place of runMan.
func newCmdMan(g *globalOptions, runF func(context.Context, *manOptions) error) *cobra.Command {
	o := &manOptions{g: g}
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write natdoctor's man pages into DIR (make man)",
		Hidden: true,
		Args:   exactArgs(1, "a directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir, o.root = args[0], cmd.Root()
			if runF == nil {
				runF = runMan
			}
			return runF(cmd.Context(), o)
		},
	}
}

// runMan writes the pages.
func runMan(_ context.Context, o *manOptions) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	date := manDate
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		if n, err := strconv.ParseInt(e, 10, 64); err == nil {
			date = time.Unix(n, 0).UTC()
		}
	}
	header := &doc.GenManHeader{Title: "NATDOCTOR", Section: "1", Source: "natdoctor", Manual: "natdoctor manual", Date: &date}
	o.root.DisableAutoGenTag = true
	return genManTree(o.root, header, o.dir)
}

// genManTree writes one page per command, each with its own --timeout
// default (doc.GenManTree would show one for all).
func genManTree(c *cobra.Command, header *doc.GenManHeader, dir string) error {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := genManTree(sub, header, dir); err != nil {
			return err
		}
	}
	showTimeoutDefault(c)
	name := strings.ReplaceAll(c.CommandPath(), " ", "-") + "." + header.Section
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	h := *header
	if err := doc.GenMan(c, &h, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
