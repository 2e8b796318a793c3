// Package report turns observations from packages nat and probe into
// findings: a stable code, a severity, a one-line summary, the evidence and
// a fix in the user's terms. It renders findings as text, JSON and Markdown.
package report
