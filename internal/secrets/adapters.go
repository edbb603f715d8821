package secrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// adapter is one secrets vendor, called through its CLI with the arguments
// Kamal 2.12 uses.
type adapter struct {
	vendor         string // for messages: "1Password"
	cli            string // executable
	requireAccount bool
	fetch          func(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error)
}

var adapters = map[string]*adapter{}

func init() {
	op := &adapter{vendor: "1Password", cli: "op", requireAccount: true, fetch: fetchOnePassword}
	bw := &adapter{vendor: "Bitwarden", cli: "bw", requireAccount: true, fetch: fetchBitwarden}
	bws := &adapter{vendor: "Bitwarden Secrets Manager", cli: "bws", fetch: fetchBitwardenSM}
	lp := &adapter{vendor: "LastPass", cli: "lpass", requireAccount: true, fetch: fetchLastPass}
	aws := &adapter{vendor: "AWS", cli: "aws", fetch: fetchAWS}
	gcp := &adapter{vendor: "GCP", cli: "gcloud", fetch: fetchGCP}
	dop := &adapter{vendor: "Doppler", cli: "doppler", fetch: fetchDoppler}
	enp := &adapter{vendor: "Enpass", cli: "enpass-cli", fetch: fetchEnpass}
	pb := &adapter{vendor: "Passbolt", cli: "passbolt", fetch: fetchPassbolt}
	test := &adapter{vendor: "Test", fetch: func(_ context.Context, _ Runner, _ string, s []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range s {
			r := []rune(k)
			for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
				r[i], r[j] = r[j], r[i]
			}
			out[k] = string(r)
		}
		return out, nil
	}}
	for name, a := range map[string]*adapter{
		"1password": op, "one_password": op, "bitwarden": bw, "bitwarden-sm": bws, "bitwarden_secrets_manager": bws,
		"lastpass": lp, "last_pass": lp, "aws_secrets_manager": aws, "gcp": gcp, "gcp_secret_manager": gcp,
		"doppler": dop, "enpass": enp, "passbolt": pb, "test": test,
	} {
		adapters[name] = a
	}
}

// Adapters lists the adapter names `secrets fetch --adapter` accepts.
func Adapters() []string {
	out := make([]string, 0, len(adapters))
	for k := range adapters {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Fetch runs `secrets fetch`: it asks the vendor CLI for each secret
// (prefixed with --from) and returns name → value.
func Fetch(ctx context.Context, r Runner, f FetchArgs) (map[string]string, error) {
	a, ok := adapters[strings.ReplaceAll(strings.ToLower(f.Adapter), "-", "-")]
	if !ok {
		return nil, fmt.Errorf("%w: Unknown secrets adapter: %s", ErrCommand, f.Adapter)
	}
	if a.requireAccount && f.Account == "" {
		return nil, fmt.Errorf("%w: Missing required option '--account'", ErrCommand)
	}
	if a.cli != "" {
		if _, err := r.LookPath(a.cli); err != nil {
			return nil, fmt.Errorf("%w: %s CLI is not installed (%s not found on PATH)", ErrCommand, a.vendor, a.cli)
		}
	}
	full := make([]string, 0, len(f.Secrets))
	for _, s := range f.Secrets {
		if f.From != "" {
			s = f.From + "/" + s
		}
		full = append(full, s)
	}
	return a.fetch(ctx, r, f.Account, full)
}

func runJSON(ctx context.Context, r Runner, env []string, v any, name string, args ...string) error {
	out, err := r.Run(ctx, env, name, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%w: %s %s returned output that is not JSON", ErrCommand, name, firstWord(args))
	}
	return nil
}

func firstWord(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// 1Password: op item get ITEM --vault V --fields label=a,label=b --format json --account A [--session S]
func fetchOnePassword(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error) {
	session := ""
	if _, err := r.Run(ctx, nil, "op", "account", "get", "--account", account); err != nil {
		out, err := r.Run(ctx, nil, "op", "signin", "--account", account, "--force", "--raw")
		if err != nil {
			return nil, fmt.Errorf("%w: Failed to login to 1Password", ErrCommand)
		}
		session = strings.TrimSpace(string(out))
	}
	type itemKey struct{ vault, item string }
	var order []itemKey
	fields := map[itemKey][]string{}
	for _, s := range secrets {
		parts := strings.Split(strings.TrimPrefix(s, "op://"), "/")
		if len(parts) < 2 {
			return nil, fmt.Errorf("%w: 1Password secrets are VAULT/ITEM[/FIELD], got %s", ErrCommand, s)
		}
		k := itemKey{parts[0], parts[1]}
		f := "password"
		if len(parts) > 2 {
			f = strings.Join(parts[2:], ".")
		}
		if _, ok := fields[k]; !ok {
			order = append(order, k)
		}
		fields[k] = append(fields[k], f)
	}
	results := map[string]string{}
	for _, k := range order {
		labels := make([]string, len(fields[k]))
		for i, f := range fields[k] {
			labels[i] = "label=" + f
		}
		args := []string{"item", "get", k.item, "--vault", k.vault, "--fields", strings.Join(labels, ","), "--format", "json", "--account", account}
		if session != "" {
			args = append(args, "--session", session)
		}
		out, err := r.Run(ctx, nil, "op", args...)
		if err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from %s in the %s 1Password vault", ErrCommand, strings.Join(fields[k], ", "), k.item, k.vault)
		}
		type field struct{ Reference, Value string }
		var list []field
		if len(fields[k]) == 1 {
			var one field
			if err := json.Unmarshal(out, &one); err != nil {
				return nil, fmt.Errorf("%w: 1Password returned output that is not JSON", ErrCommand)
			}
			list = []field{one}
		} else if err := json.Unmarshal(out, &list); err != nil {
			return nil, fmt.Errorf("%w: 1Password returned output that is not JSON", ErrCommand)
		}
		for _, f := range list {
			results[strings.TrimSuffix(strings.TrimPrefix(f.Reference, "op://"), "/password")] = f.Value
		}
	}
	return results, nil
}

// Bitwarden: bw status / login / unlock --raw / sync / get item ITEM.
func fetchBitwarden(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error) {
	var status struct{ Status string }
	if err := runJSON(ctx, r, nil, &status, "bw", "status"); err != nil {
		return nil, err
	}
	if status.Status == "unauthenticated" {
		if _, err := r.Run(ctx, nil, "bw", "login", account); err != nil {
			return nil, fmt.Errorf("%w: Failed to login to and unlock Bitwarden", ErrCommand)
		}
		_ = runJSON(ctx, r, nil, &status, "bw", "status")
	}
	var env []string
	if status.Status == "locked" {
		out, err := r.Run(ctx, nil, "bw", "unlock", "--raw")
		if err == nil && strings.TrimSpace(string(out)) != "" {
			env = []string{"BW_SESSION=" + strings.TrimSpace(string(out))}
		}
		_ = runJSON(ctx, r, env, &status, "bw", "status")
	}
	if status.Status != "unlocked" {
		return nil, fmt.Errorf("%w: Failed to login to and unlock Bitwarden", ErrCommand)
	}
	if _, err := r.Run(ctx, env, "bw", "sync"); err != nil {
		return nil, fmt.Errorf("%w: Failed to sync Bitwarden", ErrCommand)
	}
	var order []string
	fields := map[string][]string{}
	for _, s := range secrets {
		item, field, _ := strings.Cut(s, "/")
		if _, ok := fields[item]; !ok {
			order = append(order, item)
		}
		if field != "" {
			fields[item] = append(fields[item], field)
		} else if fields[item] == nil {
			fields[item] = []string{}
		}
	}
	results := map[string]string{}
	for _, item := range order {
		var js struct {
			Login  *struct{ Password *string }
			Fields []struct{ Name, Value string }
		}
		if err := runJSON(ctx, r, env, &js, "bw", "get", "item", item); err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Bitwarden", ErrCommand, item)
		}
		want := fields[item]
		if len(want) == 0 {
			if js.Login != nil && js.Login.Password != nil {
				results[item] = *js.Login.Password
				continue
			}
			if len(js.Fields) == 0 {
				return nil, fmt.Errorf("%w: Item %s is not a login type item and no fields were specified", ErrCommand, item)
			}
			for _, f := range js.Fields {
				want = append(want, f.Name)
			}
		}
		for _, w := range want {
			found := false
			for _, f := range js.Fields {
				if f.Name == w {
					results[item+"/"+w] = f.Value
					found = true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("%w: Could not find field %s in item %s in Bitwarden", ErrCommand, w, item)
			}
		}
	}
	return results, nil
}

// Bitwarden Secrets Manager: bws secret list [PROJECT] -o env | bws secret get ID -o env.
func fetchBitwardenSM(ctx context.Context, r Runner, _ string, secrets []string) (map[string]string, error) {
	results := map[string]string{}
	parseEnv := func(out []byte) {
		vals, _, _ := Parse(string(out), nil, nil)
		for k, v := range vals {
			results[k] = v
		}
	}
	for _, s := range secrets {
		var args []string
		switch {
		case s == "all":
			args = []string{"secret", "list", "-o", "env"}
		case strings.HasPrefix(s, "all/"):
			args = []string{"secret", "list", strings.TrimPrefix(s, "all/"), "-o", "env"}
		default:
			args = []string{"secret", "get", s, "-o", "env"}
		}
		out, err := r.Run(ctx, nil, "bws", args...)
		if err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Bitwarden Secrets Manager", ErrCommand, s)
		}
		parseEnv(out)
	}
	return results, nil
}

// LastPass: lpass status / login ACCOUNT / show SECRETS… --json.
func fetchLastPass(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error) {
	out, _ := r.Run(ctx, nil, "lpass", "status", "--color", "never")
	if strings.TrimSpace(string(out)) != "Logged in as "+account+"." {
		if _, err := r.Run(ctx, nil, "lpass", "login", account); err != nil {
			return nil, fmt.Errorf("%w: Failed to login to LastPass", ErrCommand)
		}
	}
	var items []struct{ Fullname, Password string }
	args := append(append([]string{"show"}, secrets...), "--json")
	if err := runJSON(ctx, r, nil, &items, "lpass", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from LastPass", ErrCommand, strings.Join(secrets, ", "))
	}
	results := map[string]string{}
	for _, it := range items {
		results[it.Fullname] = it.Password
	}
	return results, nil
}

// AWS: aws secretsmanager batch-get-secret-value --secret-id-list … [--profile ACCOUNT].
func fetchAWS(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error) {
	args := append([]string{"secretsmanager", "batch-get-secret-value", "--secret-id-list"}, secrets...)
	if account != "" {
		args = append(args, "--profile", account)
	}
	var resp struct {
		SecretValues []struct{ Name, SecretString string }
		Errors       []struct{ SecretId, Message string }
	}
	if err := runJSON(ctx, r, nil, &resp, "aws", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from AWS Secrets Manager", ErrCommand, strings.Join(secrets, ", "))
	}
	if len(resp.Errors) > 0 {
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, e.SecretId+": "+e.Message)
		}
		return nil, fmt.Errorf("%w: %s", ErrCommand, strings.Join(msgs, " "))
	}
	results := map[string]string{}
	for _, sv := range resp.SecretValues {
		var m map[string]any
		if json.Unmarshal([]byte(sv.SecretString), &m) == nil {
			for k, v := range m {
				results[sv.Name+"/"+k] = fmt.Sprint(v)
			}
			continue
		}
		results[sv.Name] = sv.SecretString
	}
	return results, nil
}

// GCP: gcloud secrets versions access VERSION --secret=NAME [--project=P] [--account=A] --format=json.
// Secrets are [PROJECT/]NAME[/VERSION].
func fetchGCP(ctx context.Context, r Runner, account string, secrets []string) (map[string]string, error) {
	results := map[string]string{}
	for _, s := range secrets {
		parts := strings.Split(s, "/")
		project, name, version := "", "", "latest"
		switch len(parts) {
		case 1:
			name = parts[0]
		case 2:
			project, name = parts[0], parts[1]
		default:
			project, name, version = parts[0], parts[1], parts[2]
		}
		args := []string{"secrets", "versions", "access", version, "--secret=" + name, "--format=json"}
		if project != "" {
			args = append(args, "--project="+project)
		}
		if account != "" && account != "default" {
			args = append(args, "--account="+account)
		}
		var resp struct{ Payload struct{ Data string } }
		if err := runJSON(ctx, r, nil, &resp, "gcloud", args...); err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from GCP Secret Manager", ErrCommand, s)
		}
		data, err := base64.StdEncoding.DecodeString(resp.Payload.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: GCP returned an undecodable payload for %s", ErrCommand, s)
		}
		results[s] = string(data)
	}
	return results, nil
}

// Doppler: doppler secrets get NAMES… --json [-p PROJECT -c CONFIG]; secrets are [PROJECT/CONFIG/]NAME.
func fetchDoppler(ctx context.Context, r Runner, _ string, secrets []string) (map[string]string, error) {
	var names []string
	project, config := "", ""
	for _, s := range secrets {
		parts := strings.Split(s, "/")
		if len(parts) >= 3 {
			project, config = parts[0], parts[1]
		}
		names = append(names, parts[len(parts)-1])
	}
	args := append([]string{"secrets", "get"}, names...)
	args = append(args, "--json")
	if project != "" {
		args = append(args, "-p", project, "-c", config)
	}
	var resp map[string]struct{ Computed string }
	if err := runJSON(ctx, r, nil, &resp, "doppler", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from Doppler", ErrCommand, strings.Join(names, ", "))
	}
	results := map[string]string{}
	for k, v := range resp {
		if project != "" {
			results[project+"/"+config+"/"+k] = v.Computed
		} else {
			results[k] = v.Computed
		}
	}
	return results, nil
}

// Enpass: enpass-cli -json -vault VAULT show ITEM…; secrets are VAULT/ITEM[/FIELD].
func fetchEnpass(ctx context.Context, r Runner, _ string, secrets []string) (map[string]string, error) {
	results := map[string]string{}
	for _, s := range secrets {
		parts := strings.Split(s, "/")
		if len(parts) < 2 {
			return nil, fmt.Errorf("%w: Enpass secrets are VAULT/ITEM[/FIELD], got %s", ErrCommand, s)
		}
		vault, item, field := strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1], ""
		if len(parts) >= 3 {
			vault, item, field = strings.Join(parts[:len(parts)-2], "/"), parts[len(parts)-2], parts[len(parts)-1]
		}
		var items []struct{ Title, Label, Password string }
		if err := runJSON(ctx, r, nil, &items, "enpass-cli", "-json", "-vault", vault, "show", item); err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Enpass", ErrCommand, item)
		}
		for _, it := range items {
			if field == "" || it.Label == field {
				key := it.Title
				if field != "" {
					key += "/" + field
				}
				results[key] = it.Password
			}
		}
	}
	return results, nil
}

// Passbolt: passbolt list resources --json (then get resource --id ID --json).
func fetchPassbolt(ctx context.Context, r Runner, _ string, secrets []string) (map[string]string, error) {
	var list []struct{ ID, Name string }
	if err := runJSON(ctx, r, nil, &list, "passbolt", "list", "resources", "--json"); err != nil {
		return nil, fmt.Errorf("%w: Could not list Passbolt resources", ErrCommand)
	}
	results := map[string]string{}
	for _, s := range secrets {
		name := s[strings.LastIndex(s, "/")+1:]
		id := ""
		for _, res := range list {
			if res.Name == name {
				id = res.ID
			}
		}
		if id == "" {
			return nil, fmt.Errorf("%w: Could not find %s in Passbolt", ErrNotFound, s)
		}
		var res struct{ Password string }
		if err := runJSON(ctx, r, nil, &res, "passbolt", "get", "resource", "--id", id, "--json"); err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Passbolt", ErrCommand, s)
		}
		results[s] = res.Password
	}
	return results, nil
}
