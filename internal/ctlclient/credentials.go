package ctlclient

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/kctl-dev/kctl/internal/atomicfile"
	"github.com/kctl-dev/kctl/internal/pki"
)

// File is an operator credentials file (YAML, 0600): the controller
// addresses, the CA certificate, and the operator's certificate and key.
type File struct {
	ClusterID   string   `yaml:"cluster_id"`
	Name        string   `yaml:"name"`
	Role        string   `yaml:"role"`
	Controllers []string `yaml:"controllers"`
	CA          string   `yaml:"ca"`
	Cert        string   `yaml:"cert"`
	Key         string   `yaml:"key"`
	// UnlockKey is the cluster's key-encryption key, base64, in the admin
	// credentials of a cluster made with --autolock (kctl cluster unlock).
	UnlockKey string `yaml:"unlock_key,omitempty"`
}

// LoadFile reads a credentials file.
func LoadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is not a kctl credentials file: %w", path, err)
	}
	if f.CA == "" || f.Cert == "" || f.Key == "" || len(f.Controllers) == 0 {
		return nil, fmt.Errorf("%s is not a kctl credentials file: it lacks ca, cert, key or controllers", path)
	}
	return &f, nil
}

// Marshal encodes the file.
func (f *File) Marshal() ([]byte, error) { return yaml.Marshal(f) }

// Save writes the file atomically with mode 0600.
func (f *File) Save(path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// Credentials loads the file's certificate, key and CA.
func (f *File) Credentials() (*pki.Credentials, error) {
	return pki.NewCredentials([]byte(f.Cert), []byte(f.Key), []byte(f.CA))
}
