package sandbox

// startContainerd runs a real containerd with Kubernetes pods made through
// CRI. (issue: containers) Not built yet.
func startContainerd(b *builder, self []byte) (func(), error) { return nil, nil }

// probeContainerd prints the decoy containers' state. Not built yet.
func probeContainerd(m Manifest) (string, error) { return "", nil }
