//go:build withc

package main

import _ "example.com/cgofix/internal/needc"
