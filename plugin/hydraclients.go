package plugin

import (
	"net/http"
	"time"

	"github.com/obdcr/obdcr/hydra"
)

// hydraClients are obdcr's ways to Hydra, built in one place for obdcr serve
// and obdcr doctor alike: the admin API with obdcr's credentials, and the public
// API with no credentials. Both trust HYDRA_ADMIN_CA_FILE's roots as they are
// when each connection is made. Built twice before, the copies drifted: the
// setup check's public client lacked the roots, and with Hydra's public API on
// a private CA a correct deployment reported Hydra's registration endpoint on.
type hydraClients struct {
	access    hydra.AdminAccess
	admin     *hydra.Admin
	public    *http.Client
	discovery *hydra.Discovery
}

// hydraClientOptions are what serve adds to the admin API's transport
// (metrics, the credentials alarm, tracing); doctor adds nothing.
type hydraClientOptions struct {
	// wrapAdmin wraps the admin API's transport; nil leaves it as it is.
	wrapAdmin func(http.RoundTripper) http.RoundTripper
	// adminHTTP replaces the admin API's client whole (tests).
	adminHTTP *http.Client
	// report says when a credential file's change cannot be applied; nil: no one is told.
	report *reloadReport
}

func newHydraClients(auth HydraAdminAuth, adminURL, publicURL string, o hydraClientOptions) (hydraClients, error) {
	access, err := hydraAccess(auth, o.report)
	if err != nil {
		return hydraClients{}, err
	}
	hc := o.adminHTTP
	if hc == nil {
		rt := hydra.NewAdminTransport(access)
		if o.wrapAdmin != nil {
			rt = o.wrapAdmin(rt)
		}
		// No client timeout: LimitCalls gives each call its 10 s once it has a place.
		hc = &http.Client{Transport: hydra.LimitCalls(rt, auth.MaxConns, 10*time.Second)}
	}
	admin, err := hydra.NewAdmin(adminURL, hc)
	if err != nil {
		return hydraClients{}, err
	}
	public := &http.Client{Timeout: 10 * time.Second, Transport: hydra.NewPublicTransport(access.RootCAs)}
	return hydraClients{access: access, admin: admin, public: public, discovery: hydra.NewDiscovery(publicURL, public)}, nil
}
