#!/bin/bash
# The IPsec lab with the Kubernetes source instead of the static file: the test API server
# (tests/fakeapi/server.py) runs in the lab's hub on 192.168.100.254 with the cluster's Nodes,
# Namespaces, Pods and the key Secret, but no MeshcryptNode: each agent publishes its own once
# its inbound side is installed, and only then do its peers encrypt to it. Checks: every node
# publishes; all node pairs only as ESP, the marker never in plaintext; the unmanaged pod in
# plaintext; a ClusterIP call (nftables DNAT) encrypted; the xfrm error counters stay 0; a
# restart of every agent during a ping flood loses nothing and re-creates no state; rotation
# 1 -> 2 driven by updating the key Secret during a ping flood: each node installs generation
# 2, publishes it, the senders switch, the old in states go after the grace period, no ping is
# lost.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_require_root
lab_require_cmds jq tcpdump openssl python3 curl
lab_require_kernel veth bridge clsact esp
: "${MESHCRYPTD:?set MESHCRYPTD}"

REQID=28003
lab_up --nodes 3 --backend xfrm --attach tc
for node in "${LAB_NODES[@]}"; do
	echo "rotation_grace = 3s" >>"$LAB_DIR/nodes/$node/meshcryptd.conf"
done
lab_k8s_source --key-secret

ours() { lab_exec "$1" ip xfrm "$2" list | grep -c "reqid $REQID" || true; }
converged() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(ours "$node" state) -ge 8 && $(ours "$node" policy) == 8 ]] || return 1
	done
}

"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
lab_check "every node publishes its MeshcryptNode with generation 1" lab_wait_until 20 lab_published 1
lab_check "every node then installs its 8 states and 8 policies" lab_wait_until 20 converged
for node in "${LAB_NODES[@]}"; do lab_xfrm_snapshot "$node"; done

marker=$(lab_marker k8s)
lab_capture_start wire
lab_assert_reach node1-a node2-a "$marker"
lab_assert_reach node2-a node3-a "$marker"
lab_assert_reach node1-u node3-a "$(lab_marker plain)"
lab_capture_stop wire
lab_assert_only_esp "$(lab_pcap wire)" node1-a node2-a
lab_assert_only_esp "$(lab_pcap wire)" node2-a node3-a
lab_assert_plaintext "$(lab_pcap wire)" node1-u node3-a
lab_assert_marker_absent "$(lab_pcap wire)" "$marker"
for node in "${LAB_NODES[@]}"; do
	lab_assert_xfrm_unchanged "$node" XfrmInTmplMismatch XfrmInNoStates XfrmOutNoStates
done

# --- a ClusterIP ----------------------------------------------------------------------------
echo 'table ip kp { chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.10 dnat to 10.1.2.10; }; }' |
	lab_exec node1 nft -f -
LAB_NS[svc]=${LAB_NS[node2-a]} LAB_IP4[svc]=10.96.0.10
marker=$(lab_marker clusterip)
lab_capture_start svc
lab_check "TCP node1-a -> ClusterIP 10.96.0.10 (DNAT to node2-a)" lab_tcp node1-a svc 4 "$marker"
lab_capture_stop svc
lab_assert_only_esp "$(lab_pcap svc)" node1-a node2-a
lab_assert_marker_absent "$(lab_pcap svc)" "$marker"

# --- a restart of every agent ---------------------------------------------------------------
before=$(lab_xfrm_add_times node1)
lab_exec node2-a busybox ping -4 -q -i 0.02 -c 250 "$(lab_ip node1-a 4)" >"$LAB_DIR/ping-restart" 2>&1 &
flood=$!
sleep 1
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
wait "$flood" || true
lost=$(awk '/packets transmitted/ { print $1 - $4 }' "$LAB_DIR/ping-restart")
lab_check "a restart of every agent loses no ping ($lost lost)" test "$lost" = 0
lab_check "the restart re-created no state (add times unchanged)" test "$before" = "$(lab_xfrm_add_times node1)"

# --- rotation through the key Secret -----------------------------------------------------------
spi_count() { lab_exec "$1" ip xfrm "$2" list | grep -c "spi $3 reqid $REQID" || true; }
switched() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(spi_count "$node" policy 0x00000102) == 4 ]] || return 1
	done
}
old_gone() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(spi_count "$node" state 0x00000101) == 0 ]] || return 1
	done
}
lab_exec node1-a busybox ping -4 -q -i 0.02 -c 750 "$(lab_ip node2-a 4)" >"$LAB_DIR/ping" 2>&1 &
flood=$!
sleep 1
printf '2 rfc4106(gcm(aes)) %s 128\n' "$(od -An -tx1 -N36 /dev/urandom | tr -d ' \n')" >>"$LAB_KEY_FILE"
lab_api apply "{\"object\": $(lab_key_secret)}" >/dev/null
lab_check "rotation: every node publishes generation 2 once its inbound side is installed" \
	lab_wait_until 10 lab_published 2
lab_check "rotation: every out policy switches to generation 2" lab_wait_until 10 switched
lab_check "rotation: the in states of generation 1 go after the grace period" lab_wait_until 15 old_gone
wait "$flood" || true
lost=$(awk '/packets transmitted/ { print $1 - $4 }' "$LAB_DIR/ping")
lab_check "rotation: a ping flood node1-a -> node2-a lost nothing ($lost lost)" test "$lost" = 0
[[ $LAB_FAILURES == 0 ]] || sed 's/^/# /' "$LAB_DIR/nodes/node1/meshcryptd.log" | tail -60
lab_finish
