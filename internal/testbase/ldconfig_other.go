//go:build !linux

package testbase

import "errors"

func hostLDConfig(rootfs) ([]byte, error) {
	return nil, errors.New("building an ld.so.cache with the host's ldconfig needs a Linux host")
}
