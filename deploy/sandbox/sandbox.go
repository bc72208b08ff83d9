package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Sandbox is the whole simulated ecosystem: one CA, a UK directory, an AU CDR
// Register, and the TPPs registered with them. It can live on disk, so that
// `obdcr-sandbox serve` and the TPP commands share it across processes.
type Sandbox struct {
	mu        sync.Mutex
	path      string          // state file; "" keeps it in memory
	BaseURL   string          `json:"base_url"`
	CACert    string          `json:"ca_cert"`
	CAKey     string          `json:"ca_key"`
	Directory *Authority      `json:"directory"`
	Register  *Authority      `json:"register"`
	TPPs      map[string]*TPP `json:"tpps"`
	// Statuses are the CDR Register's: software product id or legal entity id to status.
	ProductStatus map[string]string `json:"product_status"`
	EntityStatus  map[string]string `json:"entity_status"`
	// RegisterDown makes the status endpoints fail, to test a Register outage.
	RegisterDown bool `json:"register_down"`
	// HydraAdminURL is where the sandbox's login and consent app accepts for the
	// bank's customer (Hydra's URLS_LOGIN and URLS_CONSENT point at /hydra/...).
	HydraAdminURL string `json:"hydra_admin_url,omitempty"`
	pki           *PKI
	stamp         fileStamp // of the state file as last read or written
	// productPolls counts requests for the software product status list: one
	// per Register poll, so that tests can see how often obdcr asks.
	productPolls atomic.Int64
}

// ProductStatusPolls is how many times the software product status list was served or refused.
func (s *Sandbox) ProductStatusPolls() int64 { return s.productPolls.Load() }

// New makes a sandbox whose endpoints will be served at baseURL.
func New(baseURL string) (*Sandbox, error) {
	pki, err := NewPKI("obdcr sandbox CA")
	if err != nil {
		return nil, err
	}
	dir, err := NewAuthority(UK)
	if err != nil {
		return nil, err
	}
	reg, err := NewAuthority(AU)
	if err != nil {
		return nil, err
	}
	return &Sandbox{
		BaseURL: baseURL, CACert: string(pki.CertPEM), CAKey: string(pki.KeyPEM()), pki: pki,
		Directory: dir, Register: reg, TPPs: map[string]*TPP{},
		ProductStatus: map[string]string{}, EntityStatus: map[string]string{},
	}, nil
}

const stateFile = "sandbox.json"

// Load reads a sandbox saved in dir.
func Load(dir string) (*Sandbox, error) {
	path := filepath.Join(dir, stateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no sandbox in %s: run obdcr-sandbox init first", dir)
		}
		return nil, err
	}
	s := &Sandbox{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	s.path = path
	if s.pki, err = LoadPKI([]byte(s.CACert), []byte(s.CAKey)); err != nil {
		return nil, err
	}
	return s, nil
}

// SaveTo makes dir the sandbox's home and writes it there.
func (s *Sandbox) SaveTo(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s.path = filepath.Join(dir, stateFile)
	return s.save()
}

func (s *Sandbox) save() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	s.stamp = stampOf(s.path)
	return nil
}

// fileStamp tells a changed state file from the one last read or written.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), mod: fi.ModTime()}
}

// PKI is the sandbox's certificate authority.
func (s *Sandbox) PKI() *PKI { return s.pki }

// AddTPP makes a TPP of profile and keeps it.
func (s *Sandbox) AddTPP(profile, name string) (*TPP, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.TPPs[name]; ok {
		return nil, fmt.Errorf("a TPP named %q exists", name)
	}
	t, err := NewTPP(profile, name, s.BaseURL, s.pki)
	if err != nil {
		return nil, err
	}
	s.TPPs[name] = t
	if profile == AU {
		s.ProductStatus[t.SoftwareID] = "ACTIVE"
		s.EntityStatus[t.LegalEntityID] = "ACTIVE"
	}
	return t, s.save()
}

// AddTPPs makes n UK TPPs named prefix-0.., sharing one signing key, each with
// its own identity, JWKS URL and transport certificate, and saves once.
func (s *Sandbox) AddTPPs(prefix string, n int) ([]*TPP, error) {
	key, err := NewKey("PS256", "sig-"+base62(8))
	if err != nil {
		return nil, err
	}
	out := make([]*TPP, n)
	for i := range out {
		if out[i], err = newTPP(UK, fmt.Sprintf("%s-%d", prefix, i), s.BaseURL, s.pki, key); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range out {
		s.TPPs[t.Name] = t
	}
	return out, s.save()
}

// TPP returns the TPP called name.
func (s *Sandbox) TPP(name string) (*TPP, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.TPPs[name]
	if !ok {
		names := make([]string, 0, len(s.TPPs))
		for n := range s.TPPs {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("no TPP named %q; known: %v", name, names)
	}
	return t, nil
}

// Authority returns the SSA issuer of profile.
func (s *Sandbox) Authority(profile string) *Authority {
	if profile == AU {
		return s.Register
	}
	return s.Directory
}

// SetStatus changes a CDR Register status: of a software product, or of a legal entity.
func (s *Sandbox) SetStatus(id, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ProductStatus[id] != "":
		s.ProductStatus[id] = status
	case s.EntityStatus[id] != "":
		s.EntityStatus[id] = status
	default:
		return fmt.Errorf("%q is neither a software product nor a legal entity of the sandbox Register", id)
	}
	return s.save()
}

// SetHydraAdmin points the login and consent app at Hydra's admin API.
func (s *Sandbox) SetHydraAdmin(url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.HydraAdminURL = url
	return s.save()
}

// SetRegisterDown makes the Register's status endpoints fail (true) or answer (false).
func (s *Sandbox) SetRegisterDown(down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.RegisterDown = down
	return s.save()
}

// reload picks up changes another process (a sandbox command) saved. Reading
// and assigning happen under one lock, so a stale read cannot undo a change this
// process has just saved.
func (s *Sandbox) reload() {
	if s.path == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read again only when another process changed it: a sandbox of thousands of
	// TPPs is megabytes, and every JWKS and status request asks.
	stamp := stampOf(s.path)
	if stamp == s.stamp {
		return
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return
	}
	s.stamp = stamp
	var fresh Sandbox
	if json.Unmarshal(b, &fresh) != nil {
		return
	}
	s.TPPs, s.ProductStatus, s.EntityStatus, s.RegisterDown = fresh.TPPs, fresh.ProductStatus, fresh.EntityStatus, fresh.RegisterDown
	if fresh.HydraAdminURL != "" {
		s.HydraAdminURL = fresh.HydraAdminURL
	}
}
