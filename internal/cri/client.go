package cri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeService is the part of the CRI runtime service nodereset calls.
type runtimeService interface {
	ListPodSandbox(ctx context.Context, in *rt.ListPodSandboxRequest, opts ...grpc.CallOption) (*rt.ListPodSandboxResponse, error)
	PodSandboxStatus(ctx context.Context, in *rt.PodSandboxStatusRequest, opts ...grpc.CallOption) (*rt.PodSandboxStatusResponse, error)
	StopPodSandbox(ctx context.Context, in *rt.StopPodSandboxRequest, opts ...grpc.CallOption) (*rt.StopPodSandboxResponse, error)
	RemovePodSandbox(ctx context.Context, in *rt.RemovePodSandboxRequest, opts ...grpc.CallOption) (*rt.RemovePodSandboxResponse, error)
	ListContainers(ctx context.Context, in *rt.ListContainersRequest, opts ...grpc.CallOption) (*rt.ListContainersResponse, error)
	ContainerStatus(ctx context.Context, in *rt.ContainerStatusRequest, opts ...grpc.CallOption) (*rt.ContainerStatusResponse, error)
	StopContainer(ctx context.Context, in *rt.StopContainerRequest, opts ...grpc.CallOption) (*rt.StopContainerResponse, error)
	RemoveContainer(ctx context.Context, in *rt.RemoveContainerRequest, opts ...grpc.CallOption) (*rt.RemoveContainerResponse, error)
}

// imageService is the part of the CRI image service nodereset calls.
type imageService interface {
	ListImages(ctx context.Context, in *rt.ListImagesRequest, opts ...grpc.CallOption) (*rt.ListImagesResponse, error)
	RemoveImage(ctx context.Context, in *rt.RemoveImageRequest, opts ...grpc.CallOption) (*rt.RemoveImageResponse, error)
}

// ErrRuntimeDown means a CRI socket exists but did not answer in time
// (the runtime crashed or was stopped and left its socket).
var ErrRuntimeDown = errors.New("the container runtime is not answering")

// ErrNoSocket means no runtime listens at the endpoint: its socket does
// not exist.
var ErrNoSocket = errors.New("no CRI socket")

// ErrNotCRI means a socket answers but does not serve CRI v1: a Docker
// socket, or a containerd whose CRI plugin is disabled (Docker's own).
var ErrNotCRI = errors.New("does not serve CRI v1 (runtime.v1.RuntimeService)")

// conn is a CRI connection to one endpoint.
type conn struct {
	ep  endpoint
	cc  *grpc.ClientConn
	rs  runtimeService
	is  imageService
	ver string
}

func (c *conn) Close() error { return c.cc.Close() }

// dial connects to an endpoint and checks, within timeout, that it speaks
// CRI v1. A missing socket wraps ErrNoSocket, one that does not answer
// ErrRuntimeDown.
func dial(ctx context.Context, ep endpoint, timeout time.Duration) (*conn, error) {
	if st, err := os.Stat(ep.Path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", ep.URL(), ErrNoSocket)
	} else if err == nil && st.Mode()&fs.ModeSocket == 0 {
		return nil, fmt.Errorf("%s is not a socket (%s)", ep.URL(), st.Mode())
	}
	cc, err := grpc.NewClient("unix://"+ep.Path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI endpoint %s: %w", ep.URL(), err)
	}
	client := rt.NewRuntimeServiceClient(cc)
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := client.Version(vctx, &rt.VersionRequest{})
	if err != nil {
		cc.Close()
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s: %w within %v (%v)", ep.URL(), ErrRuntimeDown, timeout, err)
		case codes.Unimplemented:
			return nil, fmt.Errorf("%s %w: is it a Docker socket? pass it as a Docker socket instead: %w", ep.URL(), ErrNotCRI, err)
		}
		return nil, fmt.Errorf("CRI Version on %s: %w", ep.URL(), err)
	}
	return &conn{ep: ep, cc: cc, rs: client, is: rt.NewImageServiceClient(cc), ver: v.GetRuntimeName() + " " + v.GetRuntimeVersion()}, nil
}

// notFound reports whether a CRI call failed because the object is gone,
// which for removal is success.
func notFound(err error) bool {
	return status.Code(err) == codes.NotFound
}
