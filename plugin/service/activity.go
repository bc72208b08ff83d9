package service

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/obdcr/obdcr/plugin/view"
)

// activity counts registration decisions per profile by the minute for the
// last 24 hours, and refusals by error and rule, for the console's overview.
// Its size is fixed: profiles and rules are the catalogue's, minutes are 1,440.
type activity struct {
	mu       sync.Mutex
	profiles map[string]*minutes
	reasons  map[reason]int
}

type reason struct{ Error, Rule string }

const dayMinutes = 24 * 60

type minutes struct {
	approved, refused [dayMinutes]int
	stamp             [dayMinutes]int64 // the minute each slot holds
}

func newActivity(profiles []string) *activity {
	a := &activity{profiles: map[string]*minutes{}, reasons: map[reason]int{}}
	for _, p := range profiles {
		a.profiles[p] = &minutes{}
	}
	return a
}

// record counts one decision; a profile outside the catalogue is not counted,
// so a caller cannot add rows.
func (a *activity) record(now time.Time, profile string, approved bool, errCode, rule string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m, ok := a.profiles[profile]
	if !ok {
		return
	}
	minute := now.Unix() / 60
	i := minute % dayMinutes
	if m.stamp[i] != minute {
		m.stamp[i], m.approved[i], m.refused[i] = minute, 0, 0
	}
	if approved {
		m.approved[i]++
		return
	}
	m.refused[i]++
	if errCode != "" && len(a.reasons) < 10_000 {
		a.reasons[reason{errCode, rule}]++
	}
}

// profile is one profile's decisions in the last hour and day, and by hour.
func (a *activity) profile(now time.Time, name string) view.ProfileActivity {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := view.ProfileActivity{Name: name}
	m, ok := a.profiles[name]
	if !ok {
		return out
	}
	current := now.Unix() / 60
	for i := range dayMinutes {
		age := current - m.stamp[i]
		if age < 0 || age >= dayMinutes {
			continue
		}
		out.Approved24h += m.approved[i]
		out.Refused24h += m.refused[i]
		if age < 60 {
			out.Approved1h += m.approved[i]
			out.Refused1h += m.refused[i]
		}
		h := 23 - int(age/60)
		out.Hours[h][0] += m.approved[i]
		out.Hours[h][1] += m.refused[i]
	}
	return out
}

// topReasons are the n refusal reasons given most often since start.
func (a *activity) topReasons(n int) []view.Reason {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]view.Reason, 0, len(a.reasons))
	for r, c := range a.reasons {
		out = append(out, view.Reason{Error: r.Error, Rule: r.Rule, Count: c})
	}
	slices.SortFunc(out, func(x, y view.Reason) int {
		if x.Count != y.Count {
			return y.Count - x.Count
		}
		if x.Error != y.Error {
			return cmp.Compare(x.Error, y.Error)
		}
		return cmp.Compare(x.Rule, y.Rule)
	})
	return out[:min(n, len(out))]
}
