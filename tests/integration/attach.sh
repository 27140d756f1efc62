#!/bin/bash
# The attach plugins on a real kernel: attach.sh tc|tcx|auto
#
# A 3-node cluster (static source, dryrun backend: no encryption objects at all) with
# meshcryptd attaching its eBPF programs by METHOD ([attach] plugin; "auto" must pick tcx on
# Linux 6.6 and later, tc before). It checks that the programs sit on the pod interfaces and uplinks, that a pod
# interface made after start gets its program within 1 s, that a restart keeps the maps, the
# peer indices and the programs and leaves no second filter, that a foreign tc filter on our
# hooks survives start, stop and --cleanup, that --cleanup removes exactly our programs and
# pins, and that the leak guard keeps a managed pod's plaintext to a peer's pod from leaving
# the node (counted) while an unmanaged pod's leaves.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lab/lib/lab.sh
source "$HERE/../lab/lib/lab.sh"

METHOD=${1:?usage: attach.sh tc|tcx|auto}
EXPECT=$METHOD
if [[ $METHOD == auto ]]; then
	# tcx came with Linux 6.6.
	IFS=. read -r major minor _ <<<"$(uname -r)"
	if ((major > 6 || (major == 6 && minor >= 6))); then EXPECT=tcx; else EXPECT=tc; fi
fi
FOREIGN="bytecode '1,6 0 0 0'"


pins() { echo "$LAB_DIR/nodes/$1/bpffs/meshcrypt"; }
status_of() { "$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/$1/run" status || [ $? = 3 ]; }
counter() { status_of "$1" | awk -v n="$2" '$1 == "bpf:" && $2 == n { print $3 }'; }

# ours NODE DEV ingress|egress: "NAME ID" of the program of ours on that hook, nothing if none;
# one line per program of ours (two lines would be a duplicate).
ours() {
	local node=$1 dev=$2 dir=$3 ifindex pin id
	if [[ $EXPECT == tc ]]; then
		lab_exec "$node" tc filter show dev "$dev" "$dir" |
			sed -n 's/.*handle 0x6d63 \([a-z_]*\):\[[0-9]*\].* id \([0-9]*\) .*/\1 \2/p'
		return 0
	fi
	ifindex=$(lab_exec "$node" cat "/sys/class/net/$dev/ifindex")
	pin=$(pins "$node")/links/$ifindex-$dir
	lab_in_node "$node" test -e "$pin" || return 0
	id=$(lab_in_node "$node" bpftool -j link show pinned "$pin" | jq -r .prog_id)
	echo "$(bpftool -j prog show id "$id" | jq -r .name) $id"
}

foreign_count() {
	lab_exec "$1" tc filter show dev "$2" "$3" | grep -c "handle 0x7 .*bytecode" || true
}

add_foreign_filters() {
	local dev
	for dev in eth0 mcpoda; do
		lab_exec node1 tc qdisc add dev "$dev" clsact
		lab_exec node1 tc filter add dev "$dev" ingress prio 1 handle 7 bpf bytecode '1,6 0 0 0,'
		lab_exec node1 tc filter add dev "$dev" egress prio 1 handle 7 bpf bytecode '1,6 0 0 0,'
	done
}

check_foreign_filters() {
	local when=$1 dev dir
	for dev in eth0 mcpoda; do
		for dir in ingress egress; do
			lab_check "the foreign filter ($FOREIGN) on node1 $dev $dir survives $when" \
				test "$(foreign_count node1 "$dev" "$dir")" = 1
		done
	done
}

check_attached() {
	local node
	for node in "${LAB_NODES[@]}"; do
		lab_check "$node uses the $EXPECT attach method" grep -qx "attach: $METHOD\( -> $EXPECT\)\{0,1\}" \
			<(status_of "$node")
		lab_check "$node mcpoda ingress runs mc_pod_ingress" grep -qx "mc_pod_ingress [0-9]*" \
			<(ours "$node" mcpoda ingress)
		lab_check "$node mcpodu ingress runs mc_pod_ingress (unmanaged pods' interfaces too)" \
			grep -qx "mc_pod_ingress [0-9]*" <(ours "$node" mcpodu ingress)
		lab_check "$node mcpoda egress runs nothing of ours" test -z "$(ours "$node" mcpoda egress)"
		lab_check "$node uplink eth0 ingress runs mc_node_ingress" grep -qx "mc_node_ingress [0-9]*" \
			<(ours "$node" eth0 ingress)
		lab_check "$node uplink eth0 egress runs the guard" grep -qx "mc_guard [0-9]*" \
			<(ours "$node" eth0 egress)
		lab_check "$node lo runs nothing of ours" test -z "$(ours "$node" lo ingress)$(ours "$node" lo egress)"
	done
}

# A pod interface made while the agent runs gets the pod program within 1 s.
check_new_pod_interface() {
	local start end i got=''
	start=$(date +%s%N)
	lab_exec node1 ip link add mcpodnew type veth peer name xnewpeer
	for ((i = 0; i < 40; i++)); do
		got=$(ours node1 mcpodnew ingress)
		[[ -n $got ]] && break
		sleep 0.025
	done
	end=$(date +%s%N)
	lab_check "a new pod interface gets mc_pod_ingress within 1 s ($(((end - start) / 1000000)) ms)" \
		test -n "$got" -a $(((end - start) / 1000000)) -le 1000
	lab_check "its non-pod peer interface gets nothing" test -z "$(ours node1 xnewpeer ingress)"
	lab_exec node1 ip link del mcpodnew
}

snapshot() {
	local node=$1 dev dir
	for dev in mcpoda mcpodu eth0; do
		for dir in ingress egress; do
			echo "$dev $dir: $(ours "$node" "$dev" "$dir" | tr '\n' ' ')"
		done
	done
	lab_in_node "$node" bpftool -j map dump pinned "$(pins "$node")/peers" | jq -c 'sort_by(.key)'
	lab_in_node "$node" bpftool -j map dump pinned "$(pins "$node")/remote_pods" | jq -c 'sort_by(.key)'
	lab_in_node "$node" bpftool -j map dump pinned "$(pins "$node")/local_pods" | jq -c 'sort_by(.key)'
}

check_restart() {
	local before after peers
	before=$(snapshot node1)
	peers=$(lab_in_node node1 bpftool -j map dump pinned "$(pins node1)/peers" | jq length)
	lab_check "node1's peers map holds both peers' IPv4 and IPv6 addresses ($peers)" test "$peers" = 4
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
	lab_check "stopped, node1 keeps its programs" grep -qx "mc_guard [0-9]*" <(ours node1 eth0 egress)
	check_foreign_filters "a stop"
	"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
	wait_ready node1
	after=$(snapshot node1)
	lab_check "a restart keeps the programs (same ids, no duplicate) and the maps, peer indices included" \
		test "$before" = "$after"
	[[ $before == "$after" ]] || diff <(echo "$before") <(echo "$after") | sed 's/^/# /'
}

wait_ready() {
	local i
	for ((i = 0; i < 100; i++)); do
		status_of "$1" 2>/dev/null | grep -q '^queue: 0 waiting' && return 0
		sleep 0.05
	done
	return 1
}

# dataplane (dryrun) backend: nothing encrypts, so the guard is all that stands between a managed
# pod and the wire.
check_guard() {
	local before after f sent
	for f in 4 6; do
		before=$(counter node1 leak_dropped_total)
		lab_capture_start "guard$f" node1
		lab_check "ICMPv$f node1-a (managed) -> node2-a gets no answer" lab_not lab_ping node1-a node2-a "$f"
		lab_check "ICMPv$f node1-a (managed) -> node3-u (unmanaged) gets no answer" \
			lab_not lab_ping node1-a node3-u "$f"
		# The unmanaged pod's request leaves; node2's guard then stops the managed pod's plaintext
		# reply (as it should without a backend), so only the request is looked for.
		lab_ping node1-u node2-a "$f" || true
		lab_capture_stop "guard$f"
		after=$(counter node1 leak_dropped_total)
		lab_check "IPv$f: node1's guard counted the managed pod's packets ($before -> $after)" \
			test "$after" -ge $((before + 2))
		sent=$(lab_pcap_count "$(lab_pcap "guard$f")" "src $(lab_ip node1-a "$f")")
		lab_check "IPv$f: nothing from node1-a reached the wire ($sent packets)" test "$sent" = 0
		sent=$(lab_pcap_count "$(lab_pcap "guard$f")" "src $(lab_ip node1-u "$f") and dst $(lab_ip node2-a "$f")")
		lab_check "IPv$f: node1-u's request to node2-a left the node ($sent packets)" test "$sent" -ge 1
	done
	lab_check "node1-u <-> node2-u (both unmanaged) still talk" lab_ping node1-u node2-u 4
}

cleanup_node() {
	lab_in_node "$1" "$MESHCRYPTD" --cleanup --config "$LAB_DIR/nodes/$1/meshcryptd.conf" \
		>"$LAB_DIR/nodes/$1/cleanup.log" 2>&1
}

check_cleanup() {
	local node=node1 left
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
	lab_check "meshcryptd --cleanup succeeds on node1" cleanup_node "$node"
	left=''
	for dev in mcpoda mcpodu eth0; do
		for dir in ingress egress; do
			left+=$(ours "$node" "$dev" "$dir")
		done
	done
	lab_check "after --cleanup none of our programs is attached on node1" test -z "$left"
	lab_check "after --cleanup our pins are gone" lab_in_node "$node" test ! -e "$(pins "$node")"
	check_foreign_filters "--cleanup"
	lab_check "node2's agent was not touched: its guard is still there" grep -qx "mc_guard [0-9]*" \
		<(ours node2 eth0 egress)
}

main() {
	lab_require_root
	lab_require_cmds unshare nsenter tc bpftool jq tcpdump busybox
	lab_require_kernel veth bridge
	[[ -x ${MESHCRYPTD:-} && -x ${MESHCRYPTCTL:-} ]] || lab_skip "MESHCRYPTD and MESHCRYPTCTL must name the built programs"
	[[ -e ${MESHCRYPT_PLUGIN_DIR:-}/attach-tc.so ]] || lab_skip "the attach plugins were not built (meson option bpf)"
	lab_up --nodes 3 --backend dryrun --attach "$METHOD"
	add_foreign_filters
	if ! "$LAB_TOPOLOGY" start-agents "$LAB_DIR"; then
		if [[ $METHOD == tcx ]] && grep -q "cannot attach programs this way" "$LAB_DIR/nodes/node1/meshcryptd.log"; then
			lab_skip "this kernel ($(uname -r)) has no tcx (Linux 6.6 and later); the tc test covers it"
		fi
		lab_fail "the agents did not start"
		lab_finish
	fi
	local node
	for node in "${LAB_NODES[@]}"; do
		lab_check "agent on $node reconciled everything" wait_ready "$node"
	done
	check_attached
	check_foreign_filters "the start"
	check_new_pod_interface
	check_restart
	check_guard
	check_cleanup
	lab_finish
}

main "$@"
