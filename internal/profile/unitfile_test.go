package profile

import (
	"reflect"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      bool
	}{
		{"plain", "a b\tc", []string{"a", "b", "c"}, false},
		{"double quotes", `"A=b c" D=e`, []string{"A=b c", "D=e"}, false},
		{"single quotes", `'--flag' '6 4'`, []string{"--flag", "6 4"}, false},
		{"escape in double", `"a\"b"`, []string{`a"b`}, false},
		{"escape outside", `a\ b`, []string{"a b"}, false},
		{"adjacent quotes join", `--x="y z"w`, []string{"--x=y zw"}, false},
		{"empty quoted word", `''`, []string{""}, false},
		{"unterminated", `"abc`, nil, true},
		{"unterminated single", `'abc`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := splitWords(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestServiceSettings(t *testing.T) {
	text := "[Unit]\nExecStart=/not/service\n[Service]\n# comment\n; other\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--x'\n\nEnvironment=A=1\n[Install]\nWantedBy=multi-user.target\n"
	got := serviceSettings(text)
	want := [][2]string{{"ExecStart", "/usr/local/bin/k3s  server  '--x'"}, {"Environment", "A=1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseEnv(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
	}{
		{"double quoted", `K="a b"`, map[string]string{"K": "a b"}},
		{"single quoted", `K='--root-dir=/x --y'`, map[string]string{"K": "--root-dir=/x --y"}},
		{"bare", "K=v\n# C=d\nexport E=f", map[string]string{"K": "v", "E": "f"}},
		{"continued line", "K=\"--a \\\n--b\"\nL=1", map[string]string{"K": "--a  --b", "L": "1"}},
		{"no equals", "garbage\nK=", map[string]string{"K": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseEnv(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnitArgs(t *testing.T) {
	u := unit{Name: "x.service", ExecStart: `-/usr/bin/kubelet $ARGS ${ONE} --a=${ONE}/b $EMPTY`,
		Env: map[string]string{"ARGS": "--root-dir=/r   --config=/c", "ONE": "v w"}}
	got, err := u.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/kubelet", "--root-dir=/r", "--config=/c", "v w", "--a=v w/b"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFlagValues(t *testing.T) {
	args := []string{"k3s", "server", "--data-dir", "/a", "-d=/b", "--data-dirx=/no", "--kubelet-arg=root-dir=/k", "--", "--data-dir=/c"}
	for _, tc := range []struct {
		name  string
		names []string
		want  []string
	}{
		{"both forms and short", []string{"data-dir", "d"}, []string{"/a", "/b", "/c"}},
		{"value with equals", []string{"kubelet-arg"}, []string{"root-dir=/k"}},
		{"absent", []string{"config"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flagValues(args, tc.names...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := lastFlag([]string{"--x"}, "x"); got != "" {
		t.Errorf("flag without value: %q", got)
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/containerd/containerd.sock": "/run/containerd/containerd.sock",
		"/run/k3s/containerd/containerd.sock":    "/run/k3s/containerd/containerd.sock",
		"npipe:////./pipe/containerd":            "",
		"tcp://127.0.0.1:1234":                   "",
	} {
		t.Run(in, func(t *testing.T) {
			if got := socketPath(in); got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}
