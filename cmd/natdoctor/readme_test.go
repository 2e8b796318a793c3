package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/natdoctor/natdoctor/internal/iostreams"
)

// readmeCommands returns every natdoctor command line that README.md shows:
// in code blocks and in inline code.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	inBlock, cont := false, ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock {
			line = cont + line
			cont = ""
			if strings.HasSuffix(strings.TrimSpace(line), "\\") {
				cont = strings.TrimSuffix(strings.TrimSpace(line), "\\") + " "
				continue
			}
			if i := strings.Index(line, "natdoctor "); i >= 0 && !strings.Contains(line[:i], "/") {
				cmds = append(cmds, line[i:])
			}
			continue
		}
		for _, m := range regexp.MustCompile("`(natdoctor [^`]+)`").FindAllStringSubmatch(line, -1) {
			cmds = append(cmds, m[1])
		}
	}
	return cmds
}

// TestREADMECommandsParse runs every README example through natdoctor's
// own command tree and flag parser, so that the docs cannot rot.
func TestREADMECommandsParse(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) < 15 {
		t.Fatalf("found only %d examples in README.md", len(cmds))
	}
	subcommand := regexp.MustCompile(`^[a-z]+$`)
	placeholder := map[string]string{
		"PORTS...": "21", "IP": "10.0.1.2", "HOST[:PORT]": "10.0.1.2", "D": "1h", "TEXT": "x", "NAME": "x",
		"VAR": "x", "FILE": "x", "PATH": "x", "RANGE": "42000-42010", "URL": "http://127.0.0.1:8021", "ADDR": ":8021", "N": "3",
	}
	for _, line := range cmds {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		for _, op := range []string{"  (", " > ", " | ", " && ", "; "} {
			if i := strings.Index(line, op); i >= 0 {
				line = line[:i]
			}
		}
		line = strings.TrimRight(strings.TrimSpace(line), ")")
		args := strings.Fields(line)[1:]
		if len(args) == 0 || !subcommand.MatchString(args[0]) {
			continue // not a command line: a description such as "natdoctor <port>/<proto>"
		}
		// Synopses write options as [--flag VALUE] and choices as a|b: take the first.
		var filled []string
		for _, a := range args {
			a = strings.Trim(a, "[]")
			a, _, _ = strings.Cut(a, "|")
			if v, ok := placeholder[a]; ok {
				a = v
			}
			if a != "" && a != "..." {
				filled = append(filled, a)
			}
		}
		ios, _, _, _ := iostreams.Test()
		root := newCmdRoot(ios)
		root.InitDefaultCompletionCmd()
		cmd, rest, err := root.Find(filled)
		if err != nil {
			t.Errorf("README: %q: %v", line, err)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("README: %q: %v", line, err)
			continue
		}
		if cmd.Args != nil {
			if err := cmd.Args(cmd, cmd.Flags().Args()); err != nil {
				t.Errorf("README: %q: %v", line, err)
			}
		}
	}
}
