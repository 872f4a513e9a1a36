package main

import "example.com/cgofix/internal/needc"

func main() { println(needc.Answer()) }
