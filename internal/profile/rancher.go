package profile

import (
	"github.com/nodereset/nodereset/internal/paths"
	"github.com/nodereset/nodereset/pkg/host"
	"github.com/nodereset/nodereset/pkg/plan"
)

// Rancher's system agent, installed on Rancher-provisioned custom clusters
// beside RKE2 or K3s, which it installs and drives by plans.
const (
	rancherAgentUnit = "rancher-system-agent.service"
	rancherAgentBin  = "/usr/local/bin/rancher-system-agent"
	rancherAgentEtc  = "/etc/rancher/agent"
	rancherAgentVar  = "/var/lib/rancher/agent"
)

// Rancher returns the profile of Rancher's node agent. On RKE1 nodes the
// agent is the rancher-agent (cattle-node-agent) Docker container, which
// the container kinds find through DockerSockets.
func Rancher(h *host.Host) (Profile, error) {
	_ = h
	return Profile{
		Name:        "rancher",
		Units:       []string{rancherAgentUnit},
		Executables: []string{rancherAgentBin, "/usr/bin/rancher-system-agent", "/opt/bin/rancher-system-agent"},
		RejoinFiles: []string{rancherAgentEtc + "/connection-info.json"},
		Paths: []paths.Spec{
			{Path: rancherAgentEtc, Action: plan.ActionBackupRemove, Reason: "Rancher system agent's config and connection token (backed up)"},
			{Path: rancherAgentVar, Action: plan.ActionRemove, Reason: "Rancher system agent's applied plans"},
		},
	}, nil
}
