//go:build !race

package cachebound

const raceEnabled = false
