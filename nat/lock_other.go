//go:build !unix && !windows

package nat

import "os"

func tryLock(*os.File) (bool, error) { return true, nil }

func unlockFile(*os.File) {}
