#!/bin/bash
# The real meshcryptd on every node of a simulated cluster (host kernel, no encryption): each
# agent runs in its node's namespace with the static source and the dryrun backend, and its plan
# (meshcryptctl plan) names itself as the local node, every other node as a peer with that node's
# pod CIDRs, and the managed pods; the unmanaged pods appear nowhere.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lab/lib/lab.sh
source "$HERE/../lab/lib/lab.sh"

plan_of() { "$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/$1/run" plan; }

# wait_for_plan NODE: the agent answers with a plan that has its peers (5 s at most).
wait_for_plan() {
	local i
	for ((i = 0; i < 250; i++)); do
		plan_of "$1" 2>/dev/null | grep -q '^peer ' && return 0
		sleep 0.02
	done
	return 1
}

check_plans() {
	local node other i j plan
	for node in "${LAB_NODES[@]}"; do
		lab_check "agent on $node serves its plan" wait_for_plan "$node"
		plan=$(plan_of "$node")
		i=${node#node}
		lab_check "$node is the local node" grep -q "^local $node participating" <<<"$plan"
		lab_check "$node keeps its managed pod local" grep -q "^local-pod 10\.1\.$i\.10 " <<<"$plan"
		for other in "${LAB_NODES[@]}"; do
			[[ $other == "$node" ]] && continue
			j=${other#node}
			lab_check "$node has peer $other" grep -q "^peer $other\$" <<<"$plan"
			lab_check "$node routes $other's pod CIDR to it" grep -q "^  prefix 10\.1\.$j\.0/24" <<<"$plan"
			lab_check "$node knows $other's managed pod" grep -q "^remote-pod 10\.1\.$j\.10 .* peer $other" <<<"$plan"
		done
		lab_check "$node lists no unmanaged pod" lab_not grep -q "10\.1\.[0-9]\.20 " <<<"$plan"
	done
}

main() {
	lab_require_root
	lab_require_cmds unshare
	lab_require_kernel veth bridge
	[[ -x ${MESHCRYPTD:-} && -x ${MESHCRYPTCTL:-} ]] || lab_skip "MESHCRYPTD and MESHCRYPTCTL must name the built programs"
	lab_up --nodes 3 --backend dryrun --attach none
	"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
	check_plans
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
	lab_finish
}

main "$@"
