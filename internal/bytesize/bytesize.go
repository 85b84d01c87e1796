// Package bytesize reads and writes sizes in bytes with binary units
// ("67108864", "64MiB", "512KiB", "1GiB"), so that a size setting, its
// default in the help text and the errors about it are written alike.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// units are the accepted units, largest first (Format picks the largest
// exact one).
var units = []struct {
	name string
	size int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// Parse reads a whole number of bytes, optionally followed by B, KiB, MiB or
// GiB (case-insensitive, spaces allowed around the unit).
func Parse(s string) (int, error) {
	t := strings.TrimSpace(s)
	unit := int64(1)
	for _, u := range units {
		if len(t) > len(u.name) && strings.EqualFold(t[len(t)-len(u.name):], u.name) {
			t, unit = strings.TrimSpace(t[:len(t)-len(u.name)]), u.size
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (want bytes, or e.g. 512KiB, 64MiB, 1GiB)", s)
	}
	// Bounded well below any overflow: the settings using sizes check a
	// range far smaller than this.
	if n > (1<<40)/unit {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int(n * unit), nil
}

// Format writes n with the largest binary unit that divides it; Parse reads
// it back.
func Format(n int) string {
	for _, u := range units {
		if n != 0 && int64(n)%u.size == 0 {
			return strconv.FormatInt(int64(n)/u.size, 10) + u.name
		}
	}
	return strconv.Itoa(n)
}
