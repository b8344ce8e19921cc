//go:build !cgo

package main

// titleSetter is a no-op without cgo: gspt needs it.
func titleSetter() func(string) { return func(string) {} }

// rawTitleSetter is a no-op without cgo.
func rawTitleSetter() func(string) { return func(string) {} }

// makeTitleRoom does nothing without cgo: there are no titles to make room
// for.
func makeTitleRoom() {}
