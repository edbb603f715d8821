package secrets

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// scriptRunner answers commands by their joined argv prefix.
type scriptRunner struct {
	answers map[string]string
	calls   []string
}

func (s *scriptRunner) LookPath(n string) (string, error) { return "/usr/bin/" + n, nil }

func (s *scriptRunner) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	s.calls = append(s.calls, line)
	for prefix, out := range s.answers {
		if strings.HasPrefix(line, prefix) {
			return []byte(out), nil
		}
	}
	return nil, errors.New("exit 1")
}

func TestAdapterArguments(t *testing.T) {
	cases := []struct {
		name    string
		args    FetchArgs
		answers map[string]string
		want    map[string]string
		call    string
	}{
		{"bitwarden", FetchArgs{Adapter: "bitwarden", Account: "me@x", Secrets: []string{"item/F"}},
			map[string]string{"bw status": `{"status":"unlocked"}`, "bw sync": "", "bw get item item": `{"fields":[{"name":"F","value":"v"}]}`},
			map[string]string{"item/F": "v"}, "bw get item item"},
		{"bitwarden-sm", FetchArgs{Adapter: "bitwarden-sm", Secrets: []string{"proj/all"}},
			map[string]string{"bws run": "OK", "bws secret list -o env proj": "A=\"1\"\nB=2\n"},
			map[string]string{"A": "1", "B": "2"}, "bws secret list -o env proj"},
		{"lastpass", FetchArgs{Adapter: "lastpass", Account: "me@x", From: "Shared", Secrets: []string{"A"}},
			map[string]string{"lpass status": "Logged in as me@x.", "lpass show": `[{"fullname":"Shared/A","password":"p"}]`},
			map[string]string{"Shared/A": "p"}, "lpass show Shared/A --json"},
		{"aws", FetchArgs{Adapter: "aws_secrets_manager", Account: "prof", Secrets: []string{"app/db"}},
			map[string]string{"aws secretsmanager": `{"SecretValues":[{"Name":"app/db","SecretString":"{\"PW\":\"x\"}"}]}`},
			map[string]string{"app/db/PW": "x"}, "aws secretsmanager batch-get-secret-value --secret-id-list app/db --profile prof"},
		{"gcp", FetchArgs{Adapter: "gcp", Account: "default|sa@x", Secrets: []string{"proj/name/3"}},
			map[string]string{"gcloud auth list": `[{"account":"a"}]`, "gcloud secrets": `{"payload":{"data":"aGk="}}`},
			map[string]string{"proj/name": "hi"}, "gcloud secrets versions access 3 --secret=name --project=proj --impersonate-service-account=sa@x --format=json"},
		{"doppler", FetchArgs{Adapter: "doppler", From: "proj/prd", Secrets: []string{"A", "B"}},
			map[string]string{"doppler me": "{}", "doppler secrets get": `{"A":{"computed":"1"},"B":{"computed":"2"}}`},
			map[string]string{"A": "1", "B": "2"}, "doppler secrets get A B --json -p proj -c prd"},
		{"enpass", FetchArgs{Adapter: "enpass", From: "/vault", Secrets: []string{"Item/PW"}},
			map[string]string{"enpass-cli": `[{"title":"Item","label":"PW","password":"x"},{"title":"Item","label":"Other","password":"y"}]`},
			map[string]string{"Item/PW": "x"}, "enpass-cli -json -vault /vault show Item"},
		{"passbolt", FetchArgs{Adapter: "passbolt", Secrets: []string{"A"}},
			map[string]string{"passbolt verify": "", "passbolt list resources": `[{"name":"A","password":"x"}]`},
			map[string]string{"A": "x"}, `passbolt list resources --filter Name == "A" --json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("DOPPLER_TOKEN", "")
			r := &scriptRunner{answers: c.answers}
			got, err := Fetch(context.Background(), r, c.args)
			if err != nil {
				t.Fatalf("%v (calls %q)", err, r.calls)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			found := false
			for _, call := range r.calls {
				found = found || call == c.call
			}
			if !found {
				t.Errorf("no call %q in %q", c.call, r.calls)
			}
		})
	}
}
