#!/bin/bash
# The demo (README): a 3-node cluster in network namespaces, meshcryptd on every node with the
# xfrm backend, tc attach and the leak guard on. It shows encrypted pod traffic (the nodes'
# xfrm counters and a summary of a capture on the bridge), a ClusterIP call encrypted, and
# an unmanaged pod's plaintext replies delivered, then one line: whether everything held.
# Needs ESP: tests/lab/demo runs it in the lab VM when this kernel lacks it.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
lab_require_root
lab_require_cmds jq tcpdump nft
lab_require_kernel veth bridge clsact esp
: "${MESHCRYPTD:?set MESHCRYPTD}"

say() { printf '\n== %s\n' "$*"; }
ours() { lab_exec "$1" ip xfrm "$2" list | grep -c "reqid 28003" || true; }
converged() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(ours "$node" state) == 8 && $(ours "$node" policy) == 8 ]] || return 1
	done
}

say "a 3-node cluster: pods a (managed) and u (unmanaged, say istiod) on every node"
lab_up --nodes 3 --backend xfrm --attach tc
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
for ((i = 0; i < 200; i++)); do converged && break; sleep 0.05; done
lab_check "meshcryptd on every node installed its states and policies" converged
for node in "${LAB_NODES[@]}"; do lab_xfrm_snapshot "$node"; done
lab_exec node1 nft -f - <<'NFT'
table ip kp {
	chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.10 dnat to 10.1.2.10; }
}
NFT
LAB_NS[svc]=${LAB_NS[node2-a]} LAB_IP4[svc]=10.96.0.10 LAB_IP6[svc]=${LAB_IP6[node2-a]}

say "traffic, captured on the bridge between the nodes"
marker=$(lab_marker demo)
lab_capture_start wire
lab_assert_reach node1-a node2-a "$marker"
lab_assert_reach node2-a node3-a "$marker"
lab_check "node1-a calls ClusterIP 10.96.0.10 (kube-proxy's DNAT, to node2-a)" lab_tcp node1-a svc 4 "$marker"
lab_assert_reach node1-u node3-a "$(lab_marker plaintext)"
lab_capture_stop wire
pcap=$(lab_pcap wire)

say "what the wire carried"
printf '  %-52s %s\n' "packets on the bridge" "$(lab_pcap_count "$pcap" "")"
printf '  %-52s %s\n' "ESP packets between the nodes" "$(lab_pcap_count "$pcap" "ip proto 50 or ip6 proto 50")"
printf '  %-52s %s\n' "plaintext packets between managed pods" \
	"$(lab_pcap_count "$pcap" "($(lab_filter_between_pods node1-a node2-a)) or ($(lab_filter_between_pods node2-a node3-a))")"
printf '  %-52s %s\n' "plaintext packets of unmanaged node1-u (as it should)" \
	"$(lab_pcap_count "$pcap" "$(lab_filter_between_pods node1-u node3-a)")"
lab_assert_only_esp "$pcap" node1-a node2-a
lab_assert_only_esp "$pcap" node2-a node3-a
lab_assert_plaintext "$pcap" node1-u node3-a
lab_assert_marker_absent "$pcap" "$marker"

say "the nodes' xfrm states (packets through each)"
for node in "${LAB_NODES[@]}"; do
	lab_exec "$node" ip -s xfrm state list | awk -v n="$node" '
		/^src/ { pair = $2 " -> " $4 } /spi/ && /reqid 28003/ { spi = $4 }
		/^[ \t]*[0-9]+\(bytes\)/ { p = $2; sub(/\(packets\)/, "", p); sub(/\(.*/, "", spi)
		  if (pair != "") printf "  %s  %-40s spi %s  %s packets\n", n, pair, spi, p; pair = "" }'
	lab_assert_xfrm_unchanged "$node" XfrmInTmplMismatch XfrmInNoStates XfrmOutNoStates
done

echo
if ((LAB_FAILURES)); then
	echo "demo: $LAB_FAILURES check(s) FAILED: something was not encrypted or not delivered (see above)"
	exit 1
fi
echo "demo: everything held: managed pods only as ESP (ClusterIP included), unmanaged plaintext delivered, no xfrm errors"
