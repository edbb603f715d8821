package sealbox

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	agentv1 "github.com/kctl-dev/kctl/gen/kctl/agent/v1"
	deployv1 "github.com/kctl-dev/kctl/gen/kctl/deploy/v1"
)

// Placeholder starts the value of a sealed secret field: the rest is the
// field's path in the request (VisitRequestHosts), which is the key of the
// value in the host's sealed bundle.
const Placeholder = "kctl-sealed:"

// KeyFunc returns a host's agent's certified encryption public key, or an
// error saying why there is none.
type KeyFunc func(host string) ([]byte, error)

// SealRequest replaces, in req, every secret value by a placeholder and
// records in req.SealedSecrets, for every host that needs any, the values
// that host needs sealed to its agent's key. Empty values stay empty. req
// is changed in place; on error it may be half-sealed and must not be sent.
func SealRequest(req *deployv1.Request, key KeyFunc) error {
	bundles := map[string]map[string]string{}
	// A request built in memory may share one message between fields (the
	// same registry credentials for the service and an accessory): the
	// second visit then finds the first one's placeholder, whose value
	// sealed is the first's.
	sealedValue := map[string]string{} // placeholder → value
	VisitRequestHosts(req, func(path string, hosts []string, f Field) {
		v := f.Get()
		if v == "" {
			return
		}
		if real, ok := sealedValue[v]; ok {
			v = real
		}
		sealedValue[Placeholder+path] = v
		for _, h := range hosts {
			if bundles[h] == nil {
				bundles[h] = map[string]string{}
			}
			bundles[h][path] = v
		}
		f.Set(Placeholder + path)
	})
	if len(bundles) == 0 {
		return nil
	}
	if req.SealedSecrets == nil {
		req.SealedSecrets = map[string][]byte{}
	}
	hosts := make([]string, 0, len(bundles))
	for h := range bundles {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		pub, err := key(h)
		if err != nil {
			return err
		}
		ct, err := Seal(h, pub, encodeBundle(bundles[h]))
		if err != nil {
			return err
		}
		req.SealedSecrets[h] = ct
	}
	return nil
}

// CheckSealed returns an error if any secret field of req holds a value
// that is not a placeholder, or if a host that needs secrets has no sealed
// bundle: the controller refuses such a request rather than store a
// plaintext secret.
func CheckSealed(req *deployv1.Request) error {
	var err error
	VisitRequestHosts(req, func(path string, hosts []string, f Field) {
		v := f.Get()
		if v == "" || err != nil {
			return
		}
		if !strings.HasPrefix(v, Placeholder) {
			err = fmt.Errorf("secret field %s holds a value that is not sealed to its host's agent: kctl seals secrets end to end (upgrade kctl; controllers never accept plaintext secrets)", path)
			return
		}
		for _, h := range hosts {
			if len(req.GetSealedSecrets()[h]) == 0 {
				err = fmt.Errorf("secret field %s has no sealed bundle for host %s", path, h)
				return
			}
		}
	})
	return err
}

// HasPlaceholders reports whether op carries any sealed secret.
func HasPlaceholders(op *agentv1.Operation) bool {
	found := false
	VisitOperation(op, func(_ string, f Field) {
		if strings.HasPrefix(f.Get(), Placeholder) {
			found = true
		}
	})
	return found
}

// OpenOperation replaces, in op (changed in place), every placeholder by
// its value from the bundle op.SealedSecrets, opened with k as agent's key.
// It clears op.SealedSecrets. An op with no placeholder is left as is.
func OpenOperation(op *agentv1.Operation, agent string, k *PrivateKey) error {
	sealed := op.GetSealedSecrets()
	op.SealedSecrets = nil
	if !HasPlaceholders(op) {
		return nil
	}
	if k == nil {
		return fmt.Errorf("%w: agent %s was enrolled before agents had encryption keys and cannot receive secrets: re-enrol it (stop it, `kctl agents remove %s`, clear its data dir, start it with a new token)", ErrNoKey, agent, agent)
	}
	if len(sealed) == 0 {
		return fmt.Errorf("%w: the operation names sealed secrets but carries no bundle", ErrOpen)
	}
	pt, err := k.Open(agent, sealed)
	if err != nil {
		return err
	}
	values, err := decodeBundle(pt)
	if err != nil {
		return err
	}
	VisitOperation(op, func(_ string, f Field) {
		path, ok := strings.CutPrefix(f.Get(), Placeholder)
		if !ok || err != nil {
			return
		}
		v, ok := values[path]
		if !ok {
			err = fmt.Errorf("%w: the bundle holds no value for %s", ErrOpen, path)
			return
		}
		f.Set(v)
	})
	return err
}

// encodeBundle writes path → value pairs, sorted, each length-prefixed.
func encodeBundle(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

func decodeBundle(b []byte) (map[string]string, error) {
	bad := fmt.Errorf("%w: malformed bundle", ErrOpen)
	next := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	count, k := binary.Uvarint(b)
	if k <= 0 || count > uint64(len(b)) {
		return nil, bad
	}
	b = b[k:]
	m := make(map[string]string, count)
	for range count {
		key, ok1 := next()
		val, ok2 := next()
		if !ok1 || !ok2 {
			return nil, bad
		}
		m[key] = val
	}
	if len(b) != 0 {
		return nil, bad
	}
	return m, nil
}

// CheckOperationSealed returns an error if a secret field of op holds a
// value that is not a placeholder.
func CheckOperationSealed(op *agentv1.Operation) error {
	var err error
	VisitOperation(op, func(path string, f Field) {
		if v := f.Get(); err == nil && v != "" && !strings.HasPrefix(v, Placeholder) {
			err = fmt.Errorf("secret field %s holds a value that is not sealed to the agent: controllers never accept plaintext secrets", path)
		}
	})
	return err
}

// SealOperation seals op's secrets to agent's public key, as SealRequest
// does for a request (kctl's direct commands, tests): op is changed in
// place.
func SealOperation(op *agentv1.Operation, agent string, pub []byte) error {
	values := map[string]string{}
	sealedValue := map[string]string{} // placeholder → value (shared messages, as in SealRequest)
	VisitOperation(op, func(path string, f Field) {
		if v := f.Get(); v != "" {
			if real, ok := sealedValue[v]; ok {
				v = real
			}
			sealedValue[Placeholder+path] = v
			values[path] = v
			f.Set(Placeholder + path)
		}
	})
	if len(values) == 0 {
		return nil
	}
	ct, err := Seal(agent, pub, encodeBundle(values))
	if err != nil {
		return err
	}
	op.SealedSecrets = ct
	return nil
}
