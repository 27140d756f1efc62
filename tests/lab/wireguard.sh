#!/bin/bash
# The WireGuard backend in the lab VM (DESIGN.md §7, docs/wireguard.md): 3 nodes, meshcryptd
# with the wireguard backend and tc attach, IPv4 and IPv6, inbound = require.
#   wireguard.sh RP [basic]    RP: net.ipv4.conf.all.rp_filter of every node (0, 1 or 2)
# Always: managed <-> managed across all node pairs only as WireGuard UDP between the nodes,
# the marker never in plaintext; the unmanaged pod both ways in plaintext; a ClusterIP call
# (nftables DNAT) from a managed pod encrypted. Unless `basic`, also: spoofed plaintext from a
# managed remote pod dropped (inbound = require); a 50 MB TCP transfer at MTU 1500; a restart
# with no handshake, peers unchanged, no ping lost; a peer leaving loses its peer and routes, and
# coming back disturbs no other peer's session; switching to xfrm and back by SIGHUP leaves
# nothing of the other backend, traffic resuming within 2 s; --cleanup.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)
RP=${1:-1}
MODE=${2:-full}

lab_require_root
lab_require_cmds jq tcpdump nft wg python3 nsenter
lab_require_kernel veth bridge clsact wireguard esp
: "${MESHCRYPTD:?set MESHCRYPTD}" "${MESHCRYPTCTL:?set MESHCRYPTCTL}"

lab_up --nodes 3 --backend wireguard --attach tc --rp-filter "$RP"

peers_of() { lab_exec "$1" wg show mcwg0 peers 2>/dev/null | wc -l; }
routes_of() { { lab_exec "$1" ip route show table 28003; lab_exec "$1" ip -6 route show table 28003; } | grep -c mcwg0 || true; }
converged() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(peers_of "$node") == 2 && $(routes_of "$node") == 4 ]] || return 1
	done
}
handshakes() { lab_exec "$1" wg show mcwg0 latest-handshakes | sort; }
xfrm_objects() { lab_exec "$1" ip xfrm state list | grep -c "reqid 28003" || true; }

"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
lab_check "rp_filter $RP: every node has mcwg0 with both peers and their 4 routes within 10 s" \
	lab_wait_until 10 converged
key1=$(jq -r '.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node1") | .spec.wireguardPublicKey' "$LAB_CLUSTER_FILE")
lab_check "meshcryptctl wireguard-key prints node1's public key" test \
	"$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" wireguard-key)" = "$key1"
lab_check "mcwg0 runs the tunnel program on ingress" grep -q "mc_tunnel_ingr" \
	<(lab_exec node1 tc filter show dev mcwg0 ingress)
lab_check "src_valid_mark is set on mcwg0 only" test \
	"$(lab_exec node1 cat /proc/sys/net/ipv4/conf/mcwg0/src_valid_mark)$(lab_exec node1 cat /proc/sys/net/ipv4/conf/all/src_valid_mark)" = 10

marker=$(lab_marker wireguard)
lab_capture_start wire
lab_assert_reach node1-a node2-a "$marker"
lab_assert_reach node1-a node3-a "$marker"
lab_assert_reach node2-a node3-a "$marker"
lab_capture_stop wire
for pair in "node1-a node2-a" "node1-a node3-a" "node2-a node3-a"; do
	# shellcheck disable=SC2086 # two words on purpose
	lab_check "${pair/ / <-> } only as WireGuard UDP on the wire" lab_only_wireguard "$(lab_pcap wire)" $pair
done
lab_assert_marker_absent "$(lab_pcap wire)" "$marker"

marker=$(lab_marker plain)
lab_capture_start plain
lab_assert_reach node1-u node2-a "$marker"
lab_capture_stop plain
lab_assert_plaintext "$(lab_pcap plain)" node1-u node2-a

lab_exec node1 nft -f - <<'EOF'
table ip kp {
	chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.10 dnat to 10.1.2.10; }
}
EOF
LAB_NS[svc]=${LAB_NS[node2-a]} LAB_IP4[svc]=10.96.0.10
marker=$(lab_marker clusterip)
lab_capture_start svc
lab_check "TCP node1-a -> ClusterIP 10.96.0.10 (DNAT to node2-a)" lab_tcp node1-a svc 4 "$marker"
lab_capture_stop svc
lab_check "the ClusterIP call crossed the wire only as WireGuard UDP" lab_only_wireguard "$(lab_pcap svc)" node1-a node2-a
lab_assert_marker_absent "$(lab_pcap svc)" "$marker"

if [[ $MODE == basic ]]; then
	lab_finish
	exit 0
fi

# --- inbound = require ---------------------------------------------------------------------------
drops=$(lab_bpf_counter node1 strict_drop)
lab_exec node3 python3 "$LIB/spoof.py" "$(lab_ip node2-a 4)" "$(lab_ip node1-a 4)" 9004 spoofed
sleep 0.5
lab_check "inbound = require: spoofed plaintext from managed node2-a is dropped on node1 ($drops -> $(lab_bpf_counter node1 strict_drop))" \
	test "$(lab_bpf_counter node1 strict_drop)" -gt "$drops"

# --- MTU: 50 MB over TCP --------------------------------------------------------------------------
transfer() {
	ip netns exec "${LAB_NS[node2-a]}" bash -c 'busybox nc -l -p 7100 | wc -c >"$1"' rx "$LAB_DIR/received" &
	local server=$!
	sleep 0.5
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 180 ip netns exec "${LAB_NS[node1-a]}" bash -c \
		'exec 3<>"/dev/tcp/$1/7100" && head -c 52428800 /dev/zero >&3 && exec 3>&-' tx "$(lab_ip node2-a 4)"
	wait "$server"
	[[ $(cat "$LAB_DIR/received") == 52428800 ]]
}
lab_check "a 50 MB TCP transfer node1-a -> node2-a completes (mcwg0 MTU $(lab_exec node1 cat /sys/class/net/mcwg0/mtu), uplink 1500)" transfer

# --- restart ----------------------------------------------------------------------------------------
before=$(handshakes node1)
peers_before=$(lab_exec node1 wg show mcwg0 dump | cut -f1,3,4 | sort)
lab_ping_flood node2-a node1-a 5 "$LAB_DIR/ping-restart" &
flood=$!
sleep 1
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
wait "$flood"
lab_check "a restart loses no ping ($(lab_ping_lost "$LAB_DIR/ping-restart") lost)" test "$(lab_ping_lost "$LAB_DIR/ping-restart")" = 0
lab_check "a restart starts no handshake (latest handshakes unchanged)" test "$before" = "$(handshakes node1)"
lab_check "a restart leaves the peers as they were (keys, endpoints, allowed IPs)" \
	test "$peers_before" = "$(lab_exec node1 wg show mcwg0 dump | cut -f1,3,4 | sort)"

# --- a peer leaves and comes back -------------------------------------------------------------------
node2_key=$(jq -r '.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node2") | .spec.wireguardPublicKey' "$LAB_CLUSTER_FILE")
node3=$(jq -c '.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node3")' "$LAB_CLUSTER_FILE")
# status names node2's WireGuard peer as the kernel has it on node1: key and endpoint
peer_line=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" status | grep "^peer: node2 " || true)
endpoint=$(lab_exec node1 wg show mcwg0 endpoints | awk -v k="$node2_key" '$1 == k { print $2 }')
lab_check "status: node2 is WireGuard peer $node2_key at $endpoint ($peer_line)" grep -qF \
	"WireGuard peer $node2_key, endpoint ${endpoint%:*} port ${endpoint##*:}" <<<"$peer_line"
hs_node2() { lab_exec node1 wg show mcwg0 latest-handshakes | awk -v k="$node2_key" '$1 == k { print $2 }'; }
lab_ping node1-a node2-a 4 || true
hs=$(hs_node2)
status_handshake() { # the age status gives node2's latest handshake, within 2 s of the kernel's
	local line age
	line=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" status | grep "^peer: node2 ") || return 1
	[[ $line =~ latest\ handshake\ ([0-9]+)\ s\ ago ]] || return 1
	age=$(($(date +%s) - $(hs_node2)))
	((BASH_REMATCH[1] - age <= 2 && age - BASH_REMATCH[1] <= 2))
}
lab_check "status: node2's latest handshake as the kernel has it" lab_wait_until 3 status_handshake
# /metrics of node1, read by a real Prometheus parser, against wg show's dump read just after
# the scrape: for each peer the same latest handshake and no more bytes than the kernel counts
wg_metrics() {
	local scraped
	scraped=$(lab_exec node1 curl -sf http://127.0.0.1:9474/metrics) || return 1
	/usr/bin/python3 - "$scraped" "$(lab_exec node1 wg show mcwg0 dump)" \
		"$(jq -r '.items[] | select(.kind == "MeshcryptNode") | "\(.metadata.name) \(.spec.wireguardPublicKey)"' "$LAB_CLUSTER_FILE")" <<'PY'
import sys
from prometheus_client.parser import text_string_to_metric_families
f = {m.name: m for m in text_string_to_metric_families(sys.argv[1])}
kernel = {line.split("\t")[0]: line.split("\t") for line in sys.argv[2].splitlines()[1:]}
key = dict(line.split() for line in sys.argv[3].splitlines())
def by_peer(family):
    return {s.labels["peer"]: int(s.value) for s in f[family].samples}
hs = by_peer("meshcrypt_wireguard_peer_last_handshake_seconds")
rx = by_peer("meshcrypt_wireguard_peer_receive_bytes")
tx = by_peer("meshcrypt_wireguard_peer_transmit_bytes")
if sorted(hs) != ["node2", "node3"]:
    sys.exit(f"peers in /metrics: {sorted(hs)}")
for peer in hs:
    k = kernel[key[peer]]
    if hs[peer] != int(k[4]) or not 0 < rx[peer] <= int(k[5]) or not 0 < tx[peer] <= int(k[6]):
        sys.exit(f"{peer}: /metrics {hs[peer]} {rx[peer]} {tx[peer]}, kernel {k[4:7]}")
PY
}
lab_check "/metrics: each peer's latest handshake and bytes as wg show has them" lab_wait_until 3 wg_metrics
lab_ping_flood node1-a node2-a 6 "$LAB_DIR/ping-churn" &
flood=$!
lab_edit_cluster 'del(.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node3"))'
gone() { [[ $(peers_of node1) == 1 && $(routes_of node1) == 2 ]]; }
lab_check "node3 leaves: node1 removes its peer and routes" lab_wait_until 5 gone
lab_edit_cluster ".items += [$node3]"
lab_check "node3 comes back: node1 has both peers and 4 routes again" lab_wait_until 5 converged
wait "$flood"
lab_check "meanwhile node1-a -> node2-a lost nothing ($(lab_ping_lost "$LAB_DIR/ping-churn") lost)" test "$(lab_ping_lost "$LAB_DIR/ping-churn")" = 0
lab_check "and node2's session was not restarted (same latest handshake)" test "$hs" = "$(hs_node2)"
lab_check "node1-a -> node3-a works again" lab_wait_until 5 lab_ping node1-a node3-a 4

# --- switching to xfrm and back by SIGHUP ------------------------------------------------------------
switch_to() { # BACKEND
	local node conf
	for node in "${LAB_NODES[@]}"; do
		conf=$LAB_DIR/nodes/$node/meshcryptd.conf
		sed -i "s/^plugin = \(wireguard\|xfrm\)$/plugin = $1/" "$conf"
		if [[ $1 == xfrm ]] && ! grep -q '^\[plugin.xfrm\]' "$conf"; then
			printf '[plugin.xfrm]\nkey_file = %s\n' "$LAB_KEY_FILE" >>"$conf"
		fi
		if [[ $1 == wireguard ]]; then sed -i '/^\[plugin.xfrm\]/,$d' "$conf"; fi
		kill -HUP "$(lab_agent_pid "$node")"
	done
}
reaches() { lab_ping node1-a node2-a 4 && lab_ping node2-a node3-a 6; }
no_wireguard() {
	local node
	for node in "${LAB_NODES[@]}"; do
		lab_exec "$node" ip link show mcwg0 >/dev/null 2>&1 && return 1
		[[ -z $(lab_exec "$node" ip rule | grep 28003) && -z $(lab_exec "$node" ip route show table 28003) ]] || return 1
	done
}
no_xfrm() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(xfrm_objects "$node") == 0 && -z $(lab_exec "$node" ip xfrm policy list | grep 28003) ]] || return 1
	done
}
switch_to xfrm
start=$(date +%s%N)
LAB_PING_WAIT=1 lab_wait_until 10 reaches && took=$((($(date +%s%N) - start) / 1000000)) || took=never
lab_check "switched to xfrm: traffic resumes within 2 s of the last SIGHUP ($took ms)" test "$took" != never -a "${took/never/99999}" -le 2000
lab_check "switched to xfrm: nothing of WireGuard is left (device, rules, table)" lab_wait_until 5 no_wireguard
lab_check "switched to xfrm: node1 holds its 8 states" test "$(xfrm_objects node1)" = 8
marker=$(lab_marker switched)
lab_capture_start xfrm
lab_assert_reach node1-a node2-a "$marker"
lab_capture_stop xfrm
lab_assert_only_esp "$(lab_pcap xfrm)" node1-a node2-a
switch_to wireguard
start=$(date +%s%N)
LAB_PING_WAIT=1 lab_wait_until 10 reaches && took=$((($(date +%s%N) - start) / 1000000)) || took=never
lab_check "switched back to wireguard: traffic resumes within 2 s of the last SIGHUP ($took ms)" test "$took" != never -a "${took/never/99999}" -le 2000
lab_check "switched back: nothing of xfrm is left" lab_wait_until 5 no_xfrm
lab_check "switched back: WireGuard converged" lab_wait_until 5 converged

# --- stop and --cleanup ----------------------------------------------------------------------------
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
lab_check "stopped, node1 keeps mcwg0 and its peers" test "$(peers_of node1)" = 2
lab_check "meshcryptd --cleanup succeeds on node1" lab_in_node node1 "$MESHCRYPTD" --cleanup \
	--config "$LAB_DIR/nodes/node1/meshcryptd.conf"
lab_check "after --cleanup node1 has no mcwg0, no rule and no route of table 28003" \
	test -z "$(lab_exec node1 ip link show mcwg0 2>/dev/null)$(lab_exec node1 ip rule | grep 28003)$(lab_exec node1 ip route show table 28003)"
lab_check "node2 keeps its device" test "$(peers_of node2)" = 2
[[ $LAB_FAILURES == 0 ]] || sed 's/^/# /' "$LAB_DIR/nodes/node1/meshcryptd.log"
lab_finish
