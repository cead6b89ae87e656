package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/nodereset/nodereset/pkg/engine"
)

// api is the part of the Docker Engine API the kinds use.
type api interface {
	Ping(ctx context.Context, o client.PingOptions) (client.PingResult, error)
	ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerStop(ctx context.Context, id string, o client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, o client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ImageList(ctx context.Context, o client.ImageListOptions) (client.ImageListResult, error)
	ImageRemove(ctx context.Context, id string, o client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	Close() error
}

// dialer opens the API on a unix socket (a path as nodereset sees it).
type dialer func(path string) (api, error)

func dialSocket(path string) (api, error) {
	// Negotiation downgrades to the daemon's version: RKE1 nodes run
	// Docker 19.03/20.10 (API 1.40/1.41), the client's minimum is 1.40.
	return client.New(client.WithHost("unix://" + path))
}

// SocketError is a Docker socket that exists but does not answer. The
// kind cannot say what the runtime holds, so the plan is incomplete.
type SocketError struct {
	Socket string // host-side
	Err    error
}

func (e *SocketError) Error() string {
	return fmt.Sprintf("docker socket %s is not answering: %v (start dockerd so its Kubernetes containers can be removed, or delete the stale socket file if Docker is gone)", e.Socket, e.Err)
}

func (e *SocketError) Unwrap() error { return e.Err }

// socket is one daemon to talk to.
type socket struct {
	host string // host-side path, for messages and items
	path string // as nodereset sees it
}

// sockets resolves the configured sockets; a missing one means no Docker
// there. Two names for one socket (/var/run is a link to /run) count once.
func sockets(env *engine.Env, names []string) ([]socket, error) {
	type id struct{ dev, ino uint64 }
	seen := map[id]bool{}
	var out []socket
	var errs []error
	for _, n := range names {
		p, err := env.Host.Resolve(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			env.Log.Debug("no docker socket", "socket", n)
			continue
		}
		if err != nil {
			errs = append(errs, &SocketError{Socket: n, Err: err})
			continue
		}
		if fi.Mode()&fs.ModeSocket == 0 {
			errs = append(errs, &SocketError{Socket: n, Err: fmt.Errorf("%s is not a socket", p)})
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			k := id{uint64(st.Dev), st.Ino}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		out = append(out, socket{host: n, path: p})
	}
	return out, errors.Join(errs...)
}

// connect dials and pings a socket within the deadline.
func connect(ctx context.Context, dial dialer, s socket) (api, error) {
	c, err := dial(s.path)
	if err != nil {
		return nil, &SocketError{Socket: s.host, Err: err}
	}
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, &SocketError{Socket: s.host, Err: err}
	}
	return c, nil
}

// gone reports an error meaning the object no longer exists.
func gone(err error) bool { return err != nil && cerrdefs.IsNotFound(err) }
