package store

import "time"

// SetBounds gives a store small bounds (handles, bindings) and a clock, so
// that a test can fill a table.
func SetBounds(s Store, handles, bindings int, now func() time.Time) {
	switch st := s.(type) {
	case *Memory:
		st.handles.max, st.bindings.max = handles, bindings
		st.handles.now, st.bindings.now = now, now
	case *SQL:
		st.maxHandles, st.maxBindings, st.nowFn = handles, bindings, now
	}
}
