#!/bin/bash
# `topology start-agents` on the host kernel, with a stand-in for meshcryptd: one agent per node,
# each in its node's network namespace with its own bpffs in a private mount namespace (the
# machine's mount table, /sys/fs/bpf included, never sees it), stopped by SIGTERM on teardown; an
# agent that exits at once fails start-agents with its log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lab/lib/lab.sh
source "$HERE/../lab/lib/lab.sh"

report_of() { echo "$LAB_DIR/nodes/$1/state/fake-agent"; }

agent_pids() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ -f $LAB_DIR/nodes/$node/meshcryptd.pid ]] && cut -d' ' -f1 "$LAB_DIR/nodes/$node/meshcryptd.pid"
	done
	return 0
}

no_bpffs_mount_here() {
	! grep -q "$LAB_DIR" /proc/self/mountinfo
}

all_gone() {
	local pid
	for pid in "$@"; do
		! kill -0 "$pid" 2>/dev/null || return 1
	done
}

check_agents_run_isolated() {
	local node
	"$LAB_TOPOLOGY" start-agents "$LAB_DIR" --meshcryptd "$HERE/fake-meshcryptd"
	for node in "${LAB_NODES[@]}"; do
		lab_check "agent of $node runs in ${LAB_NS[$node]} on its own bpffs" test \
			"$(tr '\n' ' ' <"$(report_of "$node")")" = "node=$node netns=${LAB_NS[$node]} bpffs=bpf_fs "
		lab_check "agent of $node logs to its node directory" \
			grep -q "fake agent for $node up" "$LAB_DIR/nodes/$node/meshcryptd.log"
	done
	lab_check "no bpffs mount of the lab in this mount namespace" no_bpffs_mount_here
	lab_check "a second start-agents is refused while agents run" \
		lab_not "$LAB_TOPOLOGY" start-agents "$LAB_DIR" --meshcryptd "$HERE/fake-meshcryptd" 2>/dev/null
}

check_agents_stop() {
	local -a pids
	mapfile -t pids < <(agent_pids)
	lab_check "one agent per node (${#pids[@]})" test "${#pids[@]}" -eq "${#LAB_NODES[@]}"
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
	lab_check "agents are gone after stop-agents" all_gone "${pids[@]}"
	lab_check "each agent got SIGTERM" test "$(cat "$(report_of node1)" "$(report_of node2)" | grep -c stopped=TERM)" -eq 2
}

check_failing_agent_reported() {
	local out
	out=$(MESHCRYPTD=/bin/false LAB_AGENT_SETTLE=0.5 "$LAB_TOPOLOGY" start-agents "$LAB_DIR" 2>&1 || true)
	lab_check "an agent that exits fails start-agents, naming the node" grep -q "the agent on node1 exited" <<<"$out"
}

main() {
	lab_require_root
	lab_require_cmds unshare
	lab_require_kernel veth bridge
	lab_up --nodes 2
	check_agents_run_isolated
	check_agents_stop
	check_failing_agent_reported
	lab_finish
}

main "$@"
