package main

import "example.com/cgofix/internal/optc"

func main() { println(optc.Answer()) }
