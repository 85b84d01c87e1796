package deploycheck

import (
	"testing"

	"github.com/gatehouse-authz/gatehouse/internal/config"
)

// chartChoices are the settings the chart sets to a value of its own
// choosing, not gatehouse's default: where the secrets, the directory and the
// route table are (the chart serves Meet, so routes.builtin is meet).
var chartChoices = map[string]bool{
	"GATEHOUSE_JWT_SECRET_FILE": true,
	"GATEHOUSE_REDIS_URL":       true,
	"GATEHOUSE_USERS_FILE":      true,
	"GATEHOUSE_ROUTES":          true,
}

// TestChartDefaultsAreTheSettings': with its default values, the chart hands
// gatehouse either nothing (gatehouse's own default applies) or the
// settings table's default (the listener ports, the shutdown timeout),
// except for its own choices above: the chart's defaults cannot drift from
// gatehouse's.
func TestChartDefaultsAreTheSettings(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, s := range config.Settings() {
		defaults[s.Env] = s.Default
	}
	pf := materialize(t, render(t, ciValues("defaults")...))
	for env, got := range pf.env {
		want, known := defaults[env]
		switch {
		case !known || chartChoices[env]:
			// TestChartReachesEverySetting refuses unknown variables.
		case got != want:
			t.Errorf("the chart's default sets %s=%q; gatehouse's default is %q", env, got, want)
		}
	}
	for env := range chartChoices {
		if _, known := defaults[env]; !known {
			t.Errorf("chartChoices lists %s, which is not a setting", env)
		}
	}
}
