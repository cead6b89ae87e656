package sandbox

import (
	"github.com/nodereset/nodereset/pkg/plan"
)

const rancherAgentUnit = `[Unit]
Description=Rancher System Agent
Wants=network-online.target

[Service]
EnvironmentFile=-/etc/systemd/system/rancher-system-agent.env
ExecStart=/usr/local/bin/rancher-system-agent sentinel
Restart=always

[Install]
WantedBy=multi-user.target
`

// layoutRancher is a Rancher-provisioned custom cluster node: RKE2 driven
// by Rancher's system agent. Both profiles are detected and merged.
func layoutRancher(b *builder, pods, _ int) {
	plantRKE2(b, pods)
	b.unit("/etc/systemd/system/rancher-system-agent.service", rancherAgentUnit)
	b.expect(plan.KindService, "rancher-system-agent.service")
	b.file("/etc/rancher/agent/config.yaml", "workDirectory: /var/lib/rancher/agent/work\n", 0o600)
	b.file("/etc/rancher/agent/connection-info.json", `{"kubeConfig":"...","namespace":"fleet-default"}`, 0o600)
	b.expect(plan.KindPath, "/etc/rancher/agent")
	b.file("/var/lib/rancher/agent/applied/plan-1.json", `{"instructions":[]}`, 0o600)
	b.expect(plan.KindPath, "/var/lib/rancher/agent")
}
