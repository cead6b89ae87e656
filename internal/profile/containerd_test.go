package profile

import (
	"os"
	"testing"
)

func TestParseContainerdConfig(t *testing.T) {
	def := Containerd{Root: "/var/lib/containerd", State: "/run/containerd", Socket: "/run/containerd/containerd.sock"}
	for _, tc := range []struct {
		file string
		want Containerd
		err  bool
	}{
		{"custom.toml", Containerd{Root: "/data/containerd", State: "/run/custom", Socket: "/run/custom/containerd.sock"}, false},
		{"grpc-only.toml", Containerd{Root: def.Root, State: def.State, Socket: "/run/a.sock"}, false},
		{"unterminated.toml", def, true},
		{"notstring.toml", def, true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile("testdata/containerd/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseContainerdConfig(string(b), def)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestTOMLString(t *testing.T) {
	for in, want := range map[string]string{`"a\"b" # c`: `a"b`, `'lit\eral'`: `lit\eral`, `"/x" # "y"`: "/x"} {
		t.Run(in, func(t *testing.T) {
			got, err := tomlString(in)
			if err != nil || got != want {
				t.Errorf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}
