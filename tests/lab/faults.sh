#!/usr/bin/env bash
# Fault injection in the lab (issue 16): three nodes with the IPsec backend and tc attach, whose
# agents start with every 3rd netlink request failing (ENOBUFS) and every 4th BPF map change
# failing (EBUSY), 30 of each per agent (plugins/fault, MC_FAULTS); then again while the
# cluster changes (a peer leaves, a managed pod comes). Each time, once the faults stop:
#   - every failure was retried with backoff (the log's attempts), none given up;
#   - each node's xfrm objects are exactly the desired ones (no duplicate, none missing) and its
#     BPF maps hold exactly the desired entries (the managed pods of status --json, the peers'
#     prefixes of the plan);
#   - managed traffic works and crosses the wire only as ESP.
set -euo pipefail
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)
# shellcheck source=lib/lab.sh
source "$LIB/lab.sh"

lab_require_root
lab_require_cmds jq tcpdump bpftool nsenter
lab_require_kernel veth bridge clsact esp
: "${MESHCRYPTD:?set MESHCRYPTD}" "${MESHCRYPTCTL:?set MESHCRYPTCTL}"
[[ ${MC_FAULT_INJECTION:-0} == 1 ]] || lab_skip "this build has no fault injection (meson -Dfault_injection)"

REQID=28003
lab_up --nodes 3 --backend xfrm --attach tc

ours() { lab_exec "$1" ip xfrm "$2" list | grep -c "reqid $REQID" || true; }
ctl() { "$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/$1/run" "${@:2}"; }
map_entries() { lab_in_node "$1" bpftool -j map dump pinned "$LAB_DIR/nodes/$1/bpffs/meshcrypt/$2" | jq length; }
# NODE STATES POLICIES: the node's xfrm objects, and its BPF maps as its desired state says
exact() {
	local node=$1 json
	[[ $(ours "$node" state) == "$2" && $(ours "$node" policy) == "$3" ]] || return 1
	json=$(ctl "$node" --json status) || return 1
	[[ $(jq '.queue' <<<"$json") == 0 ]] || return 1
	[[ "$(map_entries "$node" local_pods) $(map_entries "$node" remote_pods)" == \
		"$(jq -r '"\(.managed_pods.local) \(.managed_pods.remote)"' <<<"$json")" ]] || return 1
	[[ $(map_entries "$node" peer_prefixes) == $(ctl "$node" plan | grep -c '^  prefix ') ]]
}
all_exact() {
	local node
	for node in "${LAB_NODES[@]}"; do exact "$node" "$1" "$2" || return 1; done
}
# NODE FROM: the log from line FROM on shows both injected failures retried, and a key that
# failed again retried again (attempt > 1: the backoff)
retried() {
	local lines
	lines=$(tail -n +"$2" "$LAB_DIR/nodes/$1/meshcryptd.log" | grep "apply failed (attempt") || return 1
	grep -q "No buffer space available" <<<"$lines" &&
		grep -q "Device or resource busy" <<<"$lines" && grep -q "attempt [2-9]" <<<"$lines"
}
given_up() { tail -n +"$2" "$LAB_DIR/nodes/$1/meshcryptd.log" | grep -q "can never be applied"; }
esp_only() {
	local marker
	marker=$(lab_marker faults)
	lab_capture_start wire
	lab_assert_reach node1-a node2-a "$marker"
	lab_capture_stop wire
	lab_assert_only_esp "$(lab_pcap wire)" node1-a node2-a
}

# --- 1. the agents start under faults ---------------------------------------------------------
export MC_FAULTS="netlink=ENOBUFS:3:30,bpf-map=EBUSY:4:30"
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
unset MC_FAULTS
# per node: 2 peers x 2 families x (in + out) states; 4 out policies + in and fwd per family
lab_check "once the faults stop every node holds exactly its desired xfrm objects and BPF map entries" \
	lab_wait_until 60 all_exact 8 8
for node in "${LAB_NODES[@]}"; do
	lab_check "$node: the injected failures were retried with backoff (ENOBUFS and EBUSY, attempts > 1)" \
		retried "$node" 1
	lab_check "$node: none was given up" lab_not given_up "$node" 1
done
esp_only

# --- 2. the cluster changes under faults ----------------------------------------------------------
declare -A from
for node in "${LAB_NODES[@]}"; do from[$node]=$(($(wc -l <"$LAB_DIR/nodes/$node/meshcryptd.log") + 1)); done
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
export MC_FAULTS="netlink=ENOBUFS:2:30,bpf-map=EBUSY:2:30"
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
unset MC_FAULTS
# node3 leaves, and node2 gets a managed pod outside its CIDRs (its peers' policies change)
lab_edit_cluster 'del(.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node3"))
	| .items += [{apiVersion: "v1", kind: "Pod", metadata: {namespace: "lab-enc", name: "late"},
		spec: {nodeName: "node2"}, status: {phase: "Running", podIP: "10.99.0.9",
		podIPs: [{ip: "10.99.0.9"}]}}]'
# node1 and node2: one peer left (2 families x in + out states; its prefixes, plus node2's host
# prefix on node1, plus in and fwd)
n1() { exact node1 4 7; }
n2() { exact node2 4 6; }
lab_check "after faults during the change node1 holds exactly its desired state (node3 gone, the new host prefix)" \
	lab_wait_until 60 n1
lab_check "... and node2" lab_wait_until 30 n2
for node in node1 node2; do
	lab_check "$node: retried again" retried "$node" "${from[$node]}"
	lab_check "$node: nothing given up" lab_not given_up "$node" "${from[$node]}"
done
esp_only
[[ $LAB_FAILURES == 0 ]] || sed 's/^/# /' "$LAB_DIR/nodes/node1/meshcryptd.log" | tail -n 60
lab_finish
