package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
		"VAR": "x", "FILE": "x", "PATH": "x", "RANGE": "42000-42010", "PORT": "21", "URL": "http://127.0.0.1:8021", "ADDR": ":8021", "N": "3", "R": "2",
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

// TestREADMEFirstCommandsAreCI keeps the README's first commands equal to
// what .ci/run runs: what a newcomer is told to type is what CI proves.
func TestREADMEFirstCommandsAreCI(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	if !ok {
		t.Fatal("README.md has no ```sh block")
	}
	var first []string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line != "" {
			first = append(first, line)
		}
	}
	_, section, _ := strings.Cut(string(ci), "== the README's commands\"\n")
	section, _, _ = strings.Cut(section, "\necho ")
	var run []string
	for _, line := range strings.Split(section, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			run = append(run, line)
		}
	}
	if strings.Join(first, "\n") != strings.Join(run, "\n") || len(run) == 0 {
		t.Errorf("README's first commands %q, .ci/run runs %q", first, run)
	}
	if strings.Contains(string(ci), "pkill") || strings.Contains(string(ci), "killall") {
		t.Error(".ci/run ends processes by name")
	}
}

// TestHelpMatchesREADME keeps every flag's placeholder in --help equal to
// the README's synopses, and each command's --timeout default in the
// README's global flag table.
func TestHelpMatchesREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	ios, _, _, _ := iostreams.Test()
	root := newCmdRoot(ios)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			return
		}
		c.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || f.Value.Type() == "bool" {
				return
			}
			name, _ := pflag.UnquoteUsage(f)
			if want := "--" + f.Name + " " + name; !strings.Contains(readme, want) {
				t.Errorf("%s: README never writes %q (as --help does)", c.CommandPath(), want)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	_, row, _ := strings.Cut(readme, "| `--timeout D` |")
	row, _, _ = strings.Cut(row, "\n")
	for path, d := range timeoutDefaults {
		if !strings.Contains(row, d) {
			t.Errorf("README's --timeout row does not say %q for %s: %q", d, path, row)
		}
	}
	if !strings.Contains(row, "default "+defaultTimeout.String()) {
		t.Errorf("README's --timeout row does not give the default %s", defaultTimeout)
	}
}
