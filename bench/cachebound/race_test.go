//go:build race

package cachebound

const raceEnabled = true
