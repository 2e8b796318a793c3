package main

import (
	"os"
	"testing"

	"github.com/natdoctor/natdoctor/lab"
)

// TestMain keeps this run's state to itself and removes what the lab built.
func TestMain(m *testing.M) { os.Exit(lab.Main(m)) }
