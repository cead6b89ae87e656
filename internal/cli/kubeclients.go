package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodereset/nodereset/internal/cluster"
	"github.com/nodereset/nodereset/internal/rancher"
)

// tuned sets the client limits the cluster commands use: client-go's
// default 5 QPS would pace a 110-pod drain; the server's priority and
// fairness still applies.
func tuned(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = 50, 100
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return cfg
}

// bindKubeFlags binds kubectl's connection flags on cmd. -n/--namespace
// stays accepted, as kubectl's global flag is, but is hidden: the commands
// act on a node and its pods in every namespace.
func bindKubeFlags(cmd *cobra.Command, kube *genericclioptions.ConfigFlags) {
	kube.AddFlags(cmd.Flags())
	if cmd.Flags().Lookup("namespace") != nil {
		_ = cmd.Flags().MarkHidden("namespace")
	}
}

// dryRunFlag is kubectl's --dry-run: none, client or server, and a bare
// --dry-run for client. true and false are taken too: the flag was a bool.
type dryRunFlag string

// bindDryRun binds --dry-run to d with usage.
func bindDryRun(cmd *cobra.Command, d *dryRunFlag, usage string) {
	*d = "none"
	f := cmd.Flags()
	f.StringVar((*string)(d), "dry-run", string(*d), usage+` (none, client or server, as kubectl's; server is run as client)`)
	f.Lookup("dry-run").NoOptDefVal = "client"
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "client", "server"}, cobra.ShellCompDirectiveNoFileComp))
}

// on reports whether d asks for a dry run. --dry-run=server is one too:
// nodereset sends no dry-run requests (its plan already checks the
// permissions and budgets the server would), which is said on warn.
func (d dryRunFlag) on(warn io.Writer) (bool, error) {
	switch d {
	case "none", "false":
		return false, nil
	case "client", "true":
		return true, nil
	case "server":
		fmt.Fprintln(warn, "warning: --dry-run=server is run as --dry-run=client: the plan is built from reads and access reviews, no dry-run request is sent")
		return true, nil
	}
	return false, fmt.Errorf(`--dry-run=%s: use none, client or server (a bare --dry-run is client); nothing was changed`, string(d))
}

// downstreamClients connects to the cluster kubectl's flags name.
func downstreamClients(kube *genericclioptions.ConfigFlags) (rancher.Downstream, error) {
	cfg, err := kube.ToRESTConfig()
	if err != nil {
		return rancher.Downstream{}, fmt.Errorf("kubeconfig: %w; nothing was changed", err)
	}
	tuned(cfg)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return rancher.Downstream{}, err
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return rancher.Downstream{}, err
	}
	return rancher.Downstream{Client: c, Dynamic: d, Server: cfg.Host}, nil
}

// managementClient connects to Rancher's local cluster. The typed client
// is for the access review of remove.
func managementClient(ro *rancherOptions) (rancher.Management, kubernetes.Interface, error) {
	if ro.rancherKubeconfig == "" {
		return rancher.Management{}, nil, errors.New("--rancher-kubeconfig is required: the kubeconfig of Rancher's local cluster")
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: ro.rancherKubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: ro.rancherContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return rancher.Management{}, nil, fmt.Errorf("--rancher-kubeconfig %s: %w; nothing was changed", ro.rancherKubeconfig, err)
	}
	tuned(cfg)
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return rancher.Management{}, nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return rancher.Management{}, nil, err
	}
	return rancher.Management{Dynamic: d, Server: cfg.Host}, c, nil
}

// managementError is an error about Rancher's local cluster, told as such.
// The library reports an unreachable server or a missing permission with
// internal/cluster's types, whose messages send the operator to kubectl's
// flags (--kubeconfig, --context): the downstream cluster's, where nothing
// is wrong.
type managementError struct {
	msg string
	err error
}

func (e *managementError) Error() string { return e.msg }
func (e *managementError) Unwrap() error { return e.err }

// explainManagement rewrites the errors that can only be about Rancher's
// local cluster at server to name it and its flags; others are returned as
// they are (PlanOrphans also reads the downstream cluster, and a missing
// permission does not say on which side).
func explainManagement(err error, ro *rancherOptions, server string) error {
	var (
		ue *cluster.UnreachableError
		nf *rancher.ClusterNotFoundError
		ae *rancher.AmbiguousClusterError
		me *rancher.MissingResourceError
	)
	where := ro.where()
	var msg string
	switch {
	case errors.As(err, &ue) && ue.Server == server:
		msg = fmt.Sprintf("cannot reach %s at %s: %v; check --rancher-kubeconfig and --rancher-context; nothing was changed", where, ue.Server, ue.Err)
	case errors.As(err, &nf) && nf.ID == "":
		msg = fmt.Sprintf("%s: no Rancher cluster has the API endpoint %s; pass --%s ID (list them with 'kubectl get clusters.management.cattle.io' there); nothing was changed", where, nf.Endpoint, ro.clusterFlag)
	case errors.As(err, &ae):
		msg = fmt.Sprintf("%s: Rancher clusters %s all have the API endpoint %s; pass --%s ID; nothing was changed", where, strings.Join(ae.IDs, ", "), ae.Endpoint, ro.clusterFlag)
	case errors.As(err, &nf), errors.As(err, &me):
		msg = where + ": " + err.Error()
	default:
		return err
	}
	return &managementError{msg: msg, err: err}
}

// explainManagementOnly is explainManagement for an error of calls made to
// Rancher's local cluster only: every error is about it.
func explainManagementOnly(err error, ro *rancherOptions, server string) error {
	var (
		pe *cluster.PermissionError
		me *managementError
	)
	switch err := explainManagement(err, ro, server); {
	case err == nil || errors.As(err, &me):
		return err
	case errors.As(err, &pe):
		return &managementError{err: err, msg: fmt.Sprintf("%s: the user may not %s; grant them there, or use another --rancher-kubeconfig or --rancher-context; nothing was changed",
			ro.where(), strings.Join(pe.Missing, ", "))}
	default:
		return &managementError{err: err, msg: ro.where() + ": " + err.Error()}
	}
}
