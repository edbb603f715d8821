package secrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/kctl-dev/kctl/internal/shellwords"
)

// adapter is one secrets vendor, called through its CLI with the arguments
// Kamal 2.12 uses.
type adapter struct {
	vendor         string // for messages: "1Password"
	cli            string // executable
	requireAccount bool
	fetch          func(ctx context.Context, r Runner, account, from string, secrets []string) (map[string]string, error)
}

var adapters = map[string]*adapter{}

func init() {
	op := &adapter{vendor: "1Password", cli: "op", requireAccount: true, fetch: fetchOnePassword}
	bw := &adapter{vendor: "Bitwarden", cli: "bw", requireAccount: true, fetch: fetchBitwarden}
	bws := &adapter{vendor: "Bitwarden Secrets Manager", cli: "bws", fetch: fetchBitwardenSM}
	lp := &adapter{vendor: "LastPass", cli: "lpass", requireAccount: true, fetch: fetchLastPass}
	aws := &adapter{vendor: "AWS", cli: "aws", fetch: fetchAWS}
	gcp := &adapter{vendor: "gcloud", cli: "gcloud", requireAccount: true, fetch: fetchGCP}
	dop := &adapter{vendor: "Doppler", cli: "doppler", fetch: fetchDoppler}
	enp := &adapter{vendor: "Enpass", cli: "enpass-cli", fetch: fetchEnpass}
	pb := &adapter{vendor: "Passbolt", cli: "passbolt", fetch: fetchPassbolt}
	test := &adapter{vendor: "Test", fetch: func(_ context.Context, _ Runner, _, from string, s []string) (map[string]string, error) {
		out := map[string]string{}
		for _, k := range prefixed(s, from) {
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
	return a.fetch(ctx, r, f.Account, f.From, f.Secrets)
}

// prefixed is Kamal's prefixed_secrets: each secret behind --from.
func prefixed(secrets []string, from string) []string {
	out := make([]string, 0, len(secrets))
	for _, s := range secrets {
		if from != "" {
			s = from + "/" + s
		}
		out = append(out, s)
	}
	return out
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

// 1Password: op account get / op signin --force --raw /
// op item get ITEM --vault V --fields label=a,label=b --format json --account A [--session S].
func fetchOnePassword(ctx context.Context, r Runner, account, from string, raw []string) (map[string]string, error) {
	secrets := prefixed(raw, from)
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

// Bitwarden: bw status / bw login ACCOUNT / bw unlock --raw / bw sync / bw get item ITEM,
// with BW_SESSION in the environment once unlocked.
func fetchBitwarden(ctx context.Context, r Runner, account, from string, raw []string) (map[string]string, error) {
	secrets := prefixed(raw, from)
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
			env = append(os.Environ(), "BW_SESSION="+strings.TrimSpace(string(out)))
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
		parts := strings.Split(s, "/")
		item := parts[0]
		if _, ok := fields[item]; !ok {
			order = append(order, item)
			fields[item] = []string{}
		}
		if len(parts) > 1 && parts[1] != "" {
			fields[item] = append(fields[item], parts[1])
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

// Bitwarden Secrets Manager: bws run 'echo OK' / bws secret list -o env [PROJECT] /
// bws secret get -o env UUID.
func fetchBitwardenSM(ctx context.Context, r Runner, _, from string, raw []string) (map[string]string, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: You must specify what to retrieve from Bitwarden Secrets Manager", ErrCommand)
	}
	if _, err := r.Run(ctx, nil, "bws", "run", "echo OK"); err != nil {
		return nil, fmt.Errorf("%w: Could not authenticate to Bitwarden Secrets Manager. Did you set a valid access token?", ErrCommand)
	}
	secrets := prefixed(raw, from)
	results := map[string]string{}
	parse := func(out []byte) {
		for _, line := range strings.Split(string(out), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.TrimPrefix(v, `"`)
			v = strings.TrimSuffix(v, `"`)
			results[k] = v
		}
	}
	if len(secrets) == 1 && (secrets[0] == "all" || strings.HasSuffix(secrets[0], "/all")) {
		args := []string{"secret", "list", "-o", "env"}
		if secrets[0] != "all" {
			args = append(args, strings.TrimSuffix(secrets[0], "/all"))
		}
		out, err := r.Run(ctx, nil, "bws", args...)
		if err != nil {
			return nil, fmt.Errorf("%w: Could not read secrets from Bitwarden Secrets Manager", ErrCommand)
		}
		parse(out)
		return results, nil
	}
	for _, id := range secrets {
		out, err := r.Run(ctx, nil, "bws", "secret", "get", "-o", "env", id)
		if err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Bitwarden Secrets Manager", ErrCommand, id)
		}
		parse(out)
	}
	return results, nil
}

// LastPass: lpass status --color never / lpass login ACCOUNT / lpass show SECRETS… --json.
func fetchLastPass(ctx context.Context, r Runner, account, from string, raw []string) (map[string]string, error) {
	secrets := prefixed(raw, from)
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
	var missing []string
	for _, s := range secrets {
		if _, ok := results[s]; !ok {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: Could not find %s in LastPass", ErrNotFound, strings.Join(missing, ", "))
	}
	return results, nil
}

// AWS: aws secretsmanager batch-get-secret-value --secret-id-list … [--profile ACCOUNT].
func fetchAWS(ctx context.Context, r Runner, account, from string, raw []string) (map[string]string, error) {
	secrets := prefixed(raw, from)
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

// GCP: gcloud auth list --format=json (gcloud auth login when empty) /
// gcloud secrets versions access VERSION --secret=NAME [--project=P] [--account=U]
// [--impersonate-service-account=SA] --format=json. Secrets are
// [PROJECT/]NAME[/VERSION] ("default" project = gcloud's); --account is USER[|SA,…].
func fetchGCP(ctx context.Context, r Runner, account, from string, raw []string) (map[string]string, error) {
	loggedIn := func() bool {
		var list []any
		return runJSON(ctx, r, nil, &list, "gcloud", "auth", "list", "--format=json") == nil && len(list) > 0
	}
	if !loggedIn() {
		_, _ = r.Run(ctx, nil, "gcloud", "auth", "login")
		if !loggedIn() {
			return nil, fmt.Errorf("%w: could not login to gcloud", ErrCommand)
		}
	}
	user, sa, _ := strings.Cut(account, "|")
	results := map[string]string{}
	for _, s := range prefixed(raw, from) {
		parts := strings.Split(s, "/")
		if len(parts) == 1 {
			parts = append([]string{"default"}, parts...)
		}
		project, name, version := parts[0], parts[1], "latest"
		if len(parts) > 2 {
			version = parts[2]
		}
		args := []string{"secrets", "versions", "access", version, "--secret=" + name}
		if project != "default" {
			args = append(args, "--project="+project)
		}
		if user != "default" && user != "" {
			args = append(args, "--account="+user)
		}
		if sa != "" {
			args = append(args, "--impersonate-service-account="+sa)
		}
		args = append(args, "--format=json")
		var resp struct{ Payload struct{ Data string } }
		item := project + "/" + name
		if err := runJSON(ctx, r, nil, &resp, "gcloud", args...); err != nil {
			return nil, fmt.Errorf("%w: Could not read %s from Google Secret Manager", ErrCommand, item)
		}
		data, err := base64.StdEncoding.DecodeString(resp.Payload.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: Google Secret Manager returned an undecodable payload for %s", ErrCommand, item)
		}
		results[item] = string(data)
	}
	return results, nil
}

// Doppler: doppler me --json (doppler login -y) / doppler secrets get NAMES… --json
// [-p PROJECT -c CONFIG] (from --from=project/config unless DOPPLER_TOKEN is a
// service token). Results are keyed by secret name.
func fetchDoppler(ctx context.Context, r Runner, _, from string, raw []string) (map[string]string, error) {
	if _, err := r.Run(ctx, nil, "doppler", "me", "--json"); err != nil {
		if _, err := r.Run(ctx, nil, "doppler", "login", "-y"); err != nil {
			return nil, fmt.Errorf("%w: Failed to login to Doppler", ErrCommand)
		}
	}
	secrets := prefixed(raw, from)
	if len(secrets) == 0 {
		return map[string]string{}, nil
	}
	var flags []string
	if !strings.HasPrefix(os.Getenv("DOPPLER_TOKEN"), "dp.st") {
		parts := strings.Split(secrets[0], "/")
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("%w: Missing project or config from '--from=project/config' option", ErrCommand)
		}
		flags = []string{"-p", parts[0], "-c", parts[1]}
	}
	var names []string
	for _, s := range secrets {
		names = append(names, s[strings.LastIndex(s, "/")+1:])
	}
	args := append(append(append([]string{"secrets", "get"}, names...), "--json"), flags...)
	var resp map[string]struct {
		Computed string `json:"computed"`
	}
	if err := runJSON(ctx, r, nil, &resp, "doppler", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from Doppler", ErrCommand, strings.Join(secrets, ", "))
	}
	results := map[string]string{}
	for k, v := range resp {
		results[k] = v.Computed
	}
	return results, nil
}

// Enpass: enpass-cli -json -vault FROM show TITLES…; secrets are TITLE or
// TITLE/LABEL, --from is the vault path.
func fetchEnpass(ctx context.Context, r Runner, _, from string, secrets []string) (map[string]string, error) {
	var titles []string
	seen := map[string]bool{}
	for _, s := range secrets {
		t := s
		if i := strings.LastIndex(s, "/"); i > 0 {
			t = s[:i]
		} else if i == 0 {
			t = s[1:]
		}
		if !seen[t] {
			seen[t] = true
			titles = append(titles, t)
		}
	}
	var items []struct{ Title, Label, Password string }
	args := append([]string{"-json", "-vault", from, "show"}, titles...)
	if err := runJSON(ctx, r, nil, &items, "enpass-cli", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from Enpass", ErrCommand, strings.Join(titles, ", "))
	}
	want := map[string]bool{}
	for _, s := range secrets {
		want[s] = true
	}
	results := map[string]string{}
	for _, it := range items {
		if it.Title == "" || strings.TrimSpace(it.Password) == "" {
			continue
		}
		key := it.Title
		if it.Label != "" {
			key += "/" + it.Label
		}
		if want[it.Title] || want[key] {
			if _, dup := results[key]; dup {
				return nil, fmt.Errorf("%w: %s is present more than once", ErrCommand, key)
			}
			results[key] = it.Password
		}
	}
	return results, nil
}

// Passbolt: passbolt verify / passbolt list folders --filter … --json /
// passbolt list resources --filter '…' [--folder ID…] --json. Secrets are
// [FOLDER/…/]NAME; results are keyed by resource name.
func fetchPassbolt(ctx context.Context, r Runner, _, from string, raw []string) (map[string]string, error) {
	if _, err := r.Run(ctx, nil, "passbolt", "verify"); err != nil {
		return nil, fmt.Errorf("%w: Failed to login to Passbolt", ErrCommand)
	}
	secrets := prefixed(raw, from)
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: No secrets given to fetch", ErrCommand)
	}
	pb := &passbolt{r: r}
	if paths := folderPaths(secrets); len(paths) > 0 {
		if err := pb.loadFolders(ctx, paths); err != nil {
			return nil, err
		}
	}
	conds, names := pb.resourceFilter(secrets)
	args := []string{"list", "resources"}
	if len(conds) > 0 {
		args = append(args, "--filter", strings.Join(conds, " || "))
	}
	for _, f := range pb.folders {
		args = append(args, "--folder", f.ID)
	}
	args = append(args, "--json")
	var items []struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := runJSON(ctx, r, nil, &items, "passbolt", args...); err != nil {
		return nil, fmt.Errorf("%w: Could not read %s from Passbolt", ErrCommand, strings.Join(secrets, ", "))
	}
	results := map[string]string{}
	for _, it := range items {
		results[it.Name] = it.Password
	}
	var missing []string
	for _, n := range names {
		if _, ok := results[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: Could not find the following secrets in Passbolt: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return results, nil
}

// passbolt is one Passbolt fetch: the folders found so far.
type passbolt struct {
	r       Runner
	folders []passboltFolder
}

type passboltFolder struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	ParentID string `json:"folder_parent_id"`
}

// passboltQuote quotes a name for a passbolt --filter expression.
func passboltQuote(s string) string { return strconv.Quote(shellwords.Escape(s)) }

// folderPaths are the distinct folder paths of secrets, in order.
func folderPaths(secrets []string) [][]string {
	var out [][]string
	seen := map[string]bool{}
	for _, s := range secrets {
		parts := strings.Split(s, "/")
		if dir := strings.Join(parts[:len(parts)-1], "/"); len(parts) > 1 && !seen[dir] {
			seen[dir] = true
			out = append(out, parts[:len(parts)-1])
		}
	}
	return out
}

// path is f's folder path, following parents among the known folders.
func (pb *passbolt) path(f passboltFolder) string {
	parts := []string{f.Name}
	for cur, depth := f, 0; cur.ParentID != "" && depth < 64; depth++ {
		parent, ok := pb.folder(func(p passboltFolder) bool { return p.ID == cur.ParentID })
		if !ok {
			break
		}
		parts = append([]string{parent.Name}, parts...)
		cur = parent
	}
	return strings.Join(parts, "/")
}

// folder returns the first known folder matching.
func (pb *passbolt) folder(match func(passboltFolder) bool) (passboltFolder, bool) {
	for _, f := range pb.folders {
		if match(f) {
			return f, true
		}
	}
	return passboltFolder{}, false
}

// loadFolders looks up the top folders of paths, then each path's nested
// folders level by level, and fails naming any path not found.
func (pb *passbolt) loadFolders(ctx context.Context, paths [][]string) error {
	var conds []string
	seenTop := map[string]bool{}
	for _, p := range paths {
		if !seenTop[p[0]] {
			seenTop[p[0]] = true
			conds = append(conds, "Name == "+passboltQuote(p[0]))
		}
	}
	var top []passboltFolder
	if err := runJSON(ctx, pb.r, nil, &top, "passbolt", "list", "folders", "--filter", strings.Join(conds, " || "), "--json"); err != nil {
		return fmt.Errorf("%w: Could not read folders from Passbolt", ErrCommand)
	}
	pb.folders = append(pb.folders, top...)
	for _, p := range paths {
		pb.loadNested(ctx, top, p)
	}
	found := map[string]bool{}
	for _, f := range pb.folders {
		found[pb.path(f)] = true
	}
	var missing []string
	for _, p := range paths {
		if !found[strings.Join(p, "/")] {
			missing = append(missing, strings.Join(p, "/"))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: Could not find the following folders in Passbolt: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}

// loadNested follows path below its top folder (the last of top with that
// name), stopping at the first level that is not found.
func (pb *passbolt) loadNested(ctx context.Context, top []passboltFolder, path []string) {
	var parent *passboltFolder
	for i := range top {
		if top[i].Name == path[0] {
			parent = &top[i]
		}
	}
	for _, name := range path[1:] {
		if parent == nil {
			return
		}
		var nested []passboltFolder
		if runJSON(ctx, pb.r, nil, &nested, "passbolt", "list", "folders", "--filter", "Name == "+passboltQuote(name)+" && FolderParentID == "+passboltQuote(parent.ID), "--json") != nil || len(nested) == 0 {
			return
		}
		pb.folders = append(pb.folders, nested...)
		parent = &nested[0]
	}
}

// resourceFilter is the --filter condition of each secret (by name, and by
// its deepest known folder) and the resource names to expect.
func (pb *passbolt) resourceFilter(secrets []string) (conds, names []string) {
	for _, s := range secrets {
		parts := strings.Split(s, "/")
		name := parts[len(parts)-1]
		names = append(names, name)
		if len(parts) == 1 {
			conds = append(conds, "Name == "+passboltQuote(name))
			continue
		}
		var cur *passboltFolder
		for i := range parts[:len(parts)-1] {
			prefix := strings.Join(parts[:i+1], "/")
			if f, ok := pb.folder(func(f passboltFolder) bool { return pb.path(f) == prefix }); ok {
				cur = &f
			}
		}
		if cur != nil {
			conds = append(conds, "(Name == "+passboltQuote(name)+" && FolderParentID == "+passboltQuote(cur.ID)+")")
		}
	}
	return conds, names
}
