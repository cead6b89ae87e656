package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/etcdmember"
	"github.com/nodereset/nodereset/pkg/host"
)

// etcdPlanner adapts internal/etcdmember to cluster.EtcdPlanner.
type etcdPlanner struct {
	co       *clusterOptions
	hostRoot string
}

func (e etcdPlanner) PlanRemoval(ctx context.Context, t cluster.EtcdTarget) (cluster.EtcdRemoval, error) {
	o := etcdmember.Options{Endpoints: t.ClientURLs, CACert: e.co.etcdCA, Cert: e.co.etcdCert, Key: e.co.etcdKey, AllowQuorumLoss: e.co.allowQuorumLoss}
	if o.CACert == "" && o.Cert == "" && o.Key == "" {
		if h, err := host.New(e.hostRoot); err == nil {
			o.CACert, o.Cert, o.Key, _ = etcdmember.DefaultTLS(h)
		}
	}
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("no etcd client URLs found (no etcd static pod carries the kubeadm.kubernetes.io/etcd.advertise-client-urls annotation)")
	}
	rm, err := etcdmember.PlanRemoval(ctx, o, etcdmember.Target{Name: t.Name, PeerHosts: t.PeerHosts})
	if err != nil {
		return nil, err
	}
	return etcdRemoval{rm}, nil
}

type etcdRemoval struct{ rm *etcdmember.Removal }

func (e etcdRemoval) Describe() []string { return e.rm.Describe() }

func (e etcdRemoval) Apply(ctx context.Context) (string, error) {
	res, err := e.rm.Apply(ctx)
	if err != nil {
		return "", err
	}
	if res.AlreadyGone {
		return "member " + res.Member + " already gone", nil
	}
	return fmt.Sprintf("removed member %s through %s; members now %s, leader %s", res.Member, res.Via, strings.Join(res.Remaining, ", "), res.Leader), nil
}
