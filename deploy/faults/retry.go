package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"
)

// retry is a stuck TPP's registration after the compensation window: up to
// three tries while obdcr answers 5xx or not at all. A TPP whose DELETE's
// outcome is not known sends it again first, up to ten times, until an
// answer says whether it is gone.
func (l *loadRun) retry(ctx context.Context, t *tppClient, i int) {
	t.replica = i % len(replicas)
	if slices.Contains(l.cfg.Deleting, t.t.Name) {
		t.holds, t.deleting = true, true
		pause := func(d time.Duration) { sleepCtx(ctx, d) }
		for try := 0; try < 10 && t.deleting && t.holds; try++ {
			if t.token == "" && !l.fetchToken(ctx, t) {
				t.backOff(pause)
				continue
			}
			l.deleteOnce(ctx, t, pause)
		}
		if t.holds {
			return // still there: the checker holds it to what it was told
		}
	}
	for try := 0; try < 3; try++ {
		jwt, jti, err := l.registerJWT(t)
		if err != nil {
			return
		}
		o := l.register(ctx, t, opRegister, jwt, jti)
		if o.Kind == kindAnswered && o.Status == http.StatusBadRequest && strings.Contains(o.Description, "already has a registration") {
			// A registration completed whose 201 the TPP never got (the replica
			// died between the two): the refusal names its client_id, and the
			// TPP reads it back with its own key, as the answer tells it to.
			l.adopt(ctx, t)
			return
		}
		if !o.unknownOutcome() && o.Kind != kindUnsent {
			return
		}
		time.Sleep(time.Second)
	}
}

// adopt reads back the registration a refusal named: GET /register/{client_id}
// with a token of the TPP's own.
func (l *loadRun) adopt(ctx context.Context, t *tppClient) {
	t.token = ""
	for try := 0; try < 3 && t.token == ""; try++ {
		if !l.fetchToken(ctx, t) {
			sleepCtx(ctx, time.Second)
		}
	}
	if t.token == "" {
		return
	}
	o := l.obs(t, opGet)
	l.send(ctx, t.http, &o, http.MethodGet, tppURL(o.Replica)+"/register/"+t.clientID, "", t.token, nil)
}
