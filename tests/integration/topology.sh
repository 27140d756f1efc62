#!/bin/bash
# The lab topology on the host kernel (no ESP needed): the cluster it builds routes pod traffic
# between nodes in plaintext, the files it writes describe that cluster, and teardown leaves
# nothing behind — also when the test using it fails or is killed.
set -euo pipefail

LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../lab" && pwd)
# shellcheck source=SCRIPTDIR/../lab/lib/lab.sh
source "$LAB/lib/lab.sh"

# Nothing of the run is left: no namespace, and no link in this (the caller's) namespace.
nothing_left() {
	local prefix=$1
	! ip netns list | grep -q "^$prefix" && ! ip -o link show | grep -q "$prefix"
}

check_cluster_file() {
	local json=$LAB_CLUSTER_FILE mnode boot
	lab_check "cluster file is a List of 3 Nodes, 2 Namespaces, 6 Pods, 3 MeshcryptNodes" test \
		"$(jq -r '[.kind, ([.items[].kind] | group_by(.) | map("\(.[0])=\(length)") | join(","))] | join(" ")' "$json")" \
		= "List MeshcryptNode=3,Namespace=2,Node=3,Pod=6"
	lab_check "managed pods live in the labelled namespace" test \
		"$(jq -r '[.items[] | select(.kind == "Namespace" and .metadata.labels["meshcrypt.io/encryption"] == "enabled") | .metadata.name] | join(",")' "$json")" \
		= lab-enc
	lab_check "pod node2-a: running on node2 with its lab addresses" test \
		"$(jq -r '.items[] | select(.kind == "Pod" and .metadata.name == "node2-a") | [.metadata.namespace, .spec.nodeName, .status.phase, (.status.podIPs | map(.ip) | join(","))] | join(" ")' "$json")" \
		= "lab-enc node2 Running ${LAB_IP4[node2-a]},${LAB_IP6[node2-a]}"
	mnode=$(jq -r '.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node3") | .spec
		| [(.addresses | join(",")), (.podCIDRs | join(",")), .keyGeneration, .bootID] | join(" ")' "$json")
	boot=$(jq -r '.items[] | select(.kind == "Node" and .metadata.name == "node3") | .status.nodeInfo.bootID' "$json")
	lab_check "MeshcryptNode node3: addresses, pod CIDRs, key generation 1, the Node's boot ID ($boot)" test \
		"$mnode" = "${LAB_IP4[node3]},${LAB_IP6[node3]} ${LAB_CIDR4[node3]},${LAB_CIDR6[node3]} 1 $boot"
	lab_check "node1's config names node1 and its own state and bpffs directories" grep -qzE \
		"node_name = node1.*state_dir = $LAB_DIR/nodes/node1/state.*bpffs_dir = $LAB_DIR/nodes/node1/bpffs/meshcrypt" \
		"${LAB_CONFIG[node1]}"
	lab_check "key file: generation 1, AES-256-GCM key with salt, mode 0600" test \
		"$(stat -c %a "$LAB_KEY_FILE") $(awk '{ print $1, $2, length($3), $4 }' "$LAB_KEY_FILE")" \
		= "600 1 rfc4106(gcm(aes)) 72 128"
}

check_plaintext_dataplane() {
	local marker
	marker=$(lab_marker plain)
	for node in "${LAB_NODES[@]}"; do
		lab_xfrm_snapshot "$node"
	done
	lab_capture_start wire
	lab_capture_start node3 node3
	lab_assert_reach node1-a node2-u "$marker"
	lab_assert_reach node1-a node3-a "$marker"
	lab_capture_stop wire
	lab_capture_stop node3
	lab_assert_plaintext "$(lab_pcap node3)" node1-a node3-a
	lab_assert_plaintext "$(lab_pcap wire)" node1-a node2-u
	lab_assert_plaintext "$(lab_pcap wire)" node1-a node3-a
	lab_assert_marker_seen "$(lab_pcap wire)" "$marker"
	# The tunnel checks must not pass vacuously: plaintext is neither ESP nor WireGuard.
	lab_check "the only-ESP check rejects this plaintext" lab_not lab_only_esp "$(lab_pcap wire)" node1-a node3-a
	lab_check "the only-WireGuard check rejects this plaintext" \
		lab_not lab_only_wireguard "$(lab_pcap wire)" node1-a node3-a
	lab_check "pods on one node reach each other" lab_ping node2-a node2-u 4
	for node in "${LAB_NODES[@]}"; do
		lab_assert_xfrm_unchanged "$node"
	done
	lab_check "no xfrm objects (nothing installs any here)" test \
		"$(lab_xfrm_count node1 state)$(lab_xfrm_count node1 policy)" = 00
}

check_teardown() {
	"$LAB_TOPOLOGY" down "$LAB_DIR"
	lab_check "teardown leaves no namespace and no link of $LAB_PREFIX" nothing_left "$LAB_PREFIX"
}

# A test that fails, and one that is killed, after building a topology: their traps tear it down.
check_teardown_after_failure() {
	local out prefix pid
	out=$(mktemp)
	# shellcheck disable=SC2016 # expanded by the inner bash
	bash -c 'set -euo pipefail; source "$1/lib/lab.sh"; lab_up --nodes 2
		echo "$LAB_PREFIX" >"$2"; false' failing "$LAB" "$out" >/dev/null 2>&1 || true
	prefix=$(<"$out")
	lab_check "a failed test leaves nothing of $prefix" nothing_left "$prefix"
	: >"$out"
	# Killed as meson kills a test that times out: SIGTERM to its whole process group. setsid
	# execs bash (a background job is no group leader), so $! is the group's id.
	# shellcheck disable=SC2016 # expanded by the inner bash
	setsid bash -c 'set -euo pipefail; source "$1/lib/lab.sh"; lab_up --nodes 2
		echo "$LAB_PREFIX" >"$2"; sleep 600 & wait' killed "$LAB" "$out" >/dev/null 2>&1 &
	pid=$!
	while [[ ! -s $out ]]; do
		sleep 0.1
	done
	prefix=$(<"$out")
	kill -TERM -- "-$pid"
	wait "$pid" || true
	lab_check "a killed test leaves nothing of $prefix" nothing_left "$prefix"
	rm -f "$out"
}

main() {
	lab_require_root
	lab_require_cmds tcpdump busybox jq timeout
	lab_require_kernel veth bridge
	lab_up --nodes 3
	check_cluster_file
	check_plaintext_dataplane
	check_teardown
	check_teardown_after_failure
	lab_finish
}

main "$@"
