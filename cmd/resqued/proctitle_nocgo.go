//go:build !cgo

package main

// titleSetter is a no-op without cgo: gspt needs it.
func titleSetter() func(string) { return func(string) {} }
