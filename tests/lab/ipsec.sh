#!/bin/bash
# The IPsec backend in the lab VM (DESIGN.md §6, docs/ipsec.md): 3 nodes, meshcryptd with the
# xfrm backend and tc attach on each, IPv4 and IPv6, inbound = require, rp_filter 1. Checks:
#   1. managed <-> managed across all three node pairs: only ESP between the nodes on the
#      wire (read on the bridge), the payload marker never in plaintext;
#   2. a managed pod calling a ClusterIP (nftables DNAT standing in for kube-proxy) whose
#      backend is on another node: encrypted;
#   3. unmanaged <-> managed (the istiod case): delivered in plaintext, and XfrmInTmplMismatch,
#      XfrmInNoStates, XfrmOutNoStates stay 0 on every node;
#   4. the keys in the kernel equal an independent HKDF (tests/lab/lib/hkdf.py);
#   5. foreign xfrm objects untouched (same add time) by start, reconcile, stop and --cleanup;
#   6. a restart during a ping flood and a TCP stream: nothing lost, no state re-created;
#   7. a deleted out policy (the guard drops what would leak) and a deleted out state are
#      restored within 1 s; a state given a lifetime behind our back is renewed; a hard-expired
#      out state comes back continuing its sequence numbers;
#   8. inbound = require drops spoofed plaintext from a managed remote pod; permit delivers it;
#   9. rotation 1 -> 2 during traffic, nothing lost, old in states gone after the grace;
#  10. a node "reboot" (new boot ID) re-keys that peer's states, traffic continues;
#  11. the same keys from the key Secret in the cluster file instead of the key file: nothing
#      changes; a peer that stops participating loses its objects.
#
#   ipsec.sh [static|k8s]
# With k8s the agents learn the cluster from the test API server instead of the cluster file
# (lab_k8s_source) and the same scenarios run: each agent publishes its own MeshcryptNode, so in
# 9 the nodes advertise generation 2 themselves, and in 10 node2 really goes through a reboot
# (agent stopped, its SAs and policies gone, a new boot ID, agent started) and publishes it.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/lib" && pwd)

lab_require_root
SOURCE=${1:-static}
[[ $SOURCE == static || $SOURCE == k8s ]] || { echo "usage: ipsec.sh [static|k8s]" >&2; exit 2; }
lab_require_cmds jq tcpdump nft python3 nsenter
[[ $SOURCE == static ]] || lab_require_cmds openssl curl
lab_require_kernel veth bridge clsact esp
: "${MESHCRYPTD:?set MESHCRYPTD}" "${MESHCRYPTCTL:?set MESHCRYPTCTL}"

REQID=28003 # 0x6d63, as ip(8) prints it
GRACE=3

lab_up --nodes 3 --backend xfrm --attach tc
for node in "${LAB_NODES[@]}"; do
	echo "rotation_grace = ${GRACE}s" >>"$LAB_DIR/nodes/$node/meshcryptd.conf"
done
# with the k8s source the nodes publish their MeshcryptNodes first: more time to converge
converge=10
if [[ $SOURCE == k8s ]]; then
	# shellcheck disable=SC2119 # no --key-secret: the keys come from the key file
	lab_k8s_source
	converge=20
fi

ours() { lab_exec "$1" ip xfrm "$2" list | grep -c "reqid $REQID" || true; }
# lab_wait_until SECONDS CMD...: polls CMD every 50 ms.
# Per node: 2 peers x 2 families x (in + out) states; 2 peers x 2 prefixes out policies plus
# in and fwd for each family.
converged() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(ours "$node" state) == 8 && $(ours "$node" policy) == 8 ]] || return 1
	done
}
key_of() { # NODE SRC DST SPI: the key of that state as ip(8) shows it
	lab_exec "$1" ip xfrm state list src "$2" dst "$3" | awk -v spi="$4" '
		$1 == "proto" && $2 == "esp" { on = ($4 == spi) } on && $1 == "aead" { print $3; exit }'
}
sighup_all() { local n; for n in "${LAB_NODES[@]}"; do kill -HUP "$(lab_agent_pid "$n")"; done; }

# --- foreign objects, before any agent runs --------------------------------------------------
lab_add_foreign_xfrm node1

"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
lab_check "every node installs its 8 states and 8 policies within $converge s" lab_wait_until "$converge" converged
for node in "${LAB_NODES[@]}"; do lab_xfrm_snapshot "$node"; done
lab_check "a foreign state and policy are untouched by the start" lab_foreign_untouched node1

# meshcryptctl --json status against the kernel: the plugins that run, the generation published
# and the one node1's out policies use, the pods the store holds
status_json=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" --json status)
json() { jq -r "$1" <<<"$status_json"; }
spi=$(lab_exec node1 ip xfrm policy list dir out | grep -o "spi 0x[0-9a-f]* reqid $REQID" | head -1)
spi=${spi#spi 0x}
policy_generation=$((16#${spi%% *} - 256)) # SPI 0x100 + generation (DESIGN.md §6)
lab_check "status --json: ready, xfrm and tc running ($(json '[.ready, .plugins.backend.running, .plugins.attach.running] | join(" ")'))" \
	test "$(json '[.ready, .plugins.backend.running, .plugins.attach.running] | join(" ")')" = "true xfrm tc"
lab_check "status --json: published generation $(json .key_generation_published) = the out policies' $policy_generation" \
	test "$(json .key_generation_published)" = "$policy_generation"
lab_check "status --json: $(json .objects.pods) pods = the cluster's" \
	test "$(json .objects.pods)" = "$(jq '[.items[] | select(.kind == "Pod")] | length' "$LAB_CLUSTER_FILE")"
bpf_map_entries() { lab_in_node node1 bpftool -j map dump pinned "$LAB_DIR/nodes/node1/bpffs/meshcrypt/$1" | jq length; }
managed="$(bpf_map_entries local_pods) $(bpf_map_entries remote_pods)"
lab_check "status --json: managed pods $(json '"\(.managed_pods.local) \(.managed_pods.remote)"') = the entries of node1's BPF maps local_pods and remote_pods ($managed)" \
	test "$(json '"\(.managed_pods.local) \(.managed_pods.remote)"')" = "$managed"
# /metrics of node1's agent, read by a real Prometheus parser (Debian's python3-prometheus-client)
# and compared with the kernel: node1's xfrm counters, the generation of its out policies
scrape() {
	lab_exec node1 curl -sf http://127.0.0.1:9474/metrics | /usr/bin/python3 -c '
import sys
from prometheus_client.parser import text_string_to_metric_families
f = {m.name: m for m in text_string_to_metric_families(sys.stdin.read())}
xfrm = {s.labels["counter"]: int(s.value) for s in f["meshcrypt_xfrm_errors"].samples}
total = lambda family: int(sum(s.value for s in f[family].samples))
applied = [int(s.value) for s in f["meshcrypt_peers"].samples if s.labels["state"] == "applied"]
print(int(f["meshcrypt_key_generation_published"].samples[0].value), int(f["meshcrypt_ready"].samples[0].value),
      xfrm["XfrmInNoStates"], xfrm["XfrmOutNoStates"], "meshcrypt_bpf_marked" in f,
      total("meshcrypt_xfrm_states"), total("meshcrypt_xfrm_policies"), applied[0])'
}
# status: node1's line for node2 names its out SAs (IPv4 and IPv6); each is in node1's kernel
peer_line=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" status | grep "^peer: node2 " || true)
named_out_sas() {
	local n=0 spi to
	while read -r _ spi _ _ _ to; do
		lab_exec node1 ip xfrm state list dst "$to" | grep -q "spi $spi reqid $REQID" || return 1
		n=$((n + 1))
	done < <(grep -o "spi 0x[0-9a-f]* (generation [0-9]*) to [0-9a-f.:]*" <<<"$peer_line")
	((n == 2))
}
lab_check "status: node2's out SAs as the kernel has them ($peer_line)" named_out_sas
lab_check "status --json: node1 has $(json '.peers | length') peers with what the backend holds" \
	test "$(json '[.peers[] | select(.backend | test("out SA spi"))] | length')" = 2

# meshcryptctl explain: the SA it names for node1-a -> node2-a is in node1's kernel
explain=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" explain "$(lab_ip node1-a 4)" "$(lab_ip node2-a 4)")
named_sa=$(grep -o "ESP SA spi 0x[0-9a-f]* (generation [0-9]*, the one node2 advertises) to [0-9.]*" <<<"$explain" || true)
sa_in_kernel() {
	local spi=${named_sa#ESP SA spi } to=${named_sa##* to }
	lab_exec node1 ip xfrm state list src "$(lab_ip node1 4)" dst "$to" | grep -q "spi ${spi%% *} reqid $REQID"
}
lab_check "explain node1-a -> node2-a: encrypted, through an SA node1 has (${named_sa:-none named})" \
	sa_in_kernel
lab_check "explain node1-u -> node2-a: not encrypted, the source is not managed" grep -q \
	"not encrypted: the source is not a managed pod" <<<"$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" explain "$(lab_ip node1-u 4)" "$(lab_ip node2-a 4)")"
want="$policy_generation 1 $(lab_xfrm_stat node1 XfrmInNoStates) $(lab_xfrm_stat node1 XfrmOutNoStates) True $(ours node1 state) $(ours node1 policy) 2"
lab_check "/metrics parses; generation, ready, XfrmInNoStates, XfrmOutNoStates, states, policies as the kernel has them, 2 peers applied ($want)" \
	test "$(scrape)" = "$want"

# --- 1. all node pairs ----------------------------------------------------------------------
marker=$(lab_marker ipsec)
lab_capture_start wire
lab_assert_reach node1-a node2-a "$marker"
lab_assert_reach node1-a node3-a "$marker"
lab_assert_reach node2-a node3-a "$marker"
lab_capture_stop wire
lab_assert_only_esp "$(lab_pcap wire)" node1-a node2-a
lab_assert_only_esp "$(lab_pcap wire)" node1-a node3-a
lab_assert_only_esp "$(lab_pcap wire)" node2-a node3-a
lab_assert_marker_absent "$(lab_pcap wire)" "$marker"

# --- 2. ClusterIP through DNAT ----------------------------------------------------------------
lab_exec node1 nft -f - <<'EOF'
table ip kp {
	chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.10 dnat to 10.1.2.10; }
}
table ip6 kp6 {
	chain pre { type nat hook prerouting priority -100; ip6 daddr fd00:96::10 dnat to fd00:1:2::10; }
}
EOF
LAB_NS[svc]=${LAB_NS[node2-a]} LAB_IP4[svc]=10.96.0.10 LAB_IP6[svc]=fd00:96::10
marker=$(lab_marker clusterip)
lab_capture_start svc
lab_check "TCPv4 node1-a -> ClusterIP 10.96.0.10 (DNAT to node2-a)" lab_tcp node1-a svc 4 "$marker"
lab_check "TCPv6 node1-a -> ClusterIP fd00:96::10 (DNAT to node2-a)" lab_tcp node1-a svc 6 "$marker"
lab_capture_stop svc
lab_assert_only_esp "$(lab_pcap svc)" node1-a node2-a
lab_assert_marker_absent "$(lab_pcap svc)" "$marker"

# --- 3. unmanaged pods ------------------------------------------------------------------------
marker=$(lab_marker plain)
lab_capture_start plain
lab_assert_reach node1-u node2-a "$marker"
lab_assert_reach node3-u node1-a "$marker"
lab_capture_stop plain
lab_assert_plaintext "$(lab_pcap plain)" node1-u node2-a
lab_assert_plaintext "$(lab_pcap plain)" node3-u node1-a
for node in "${LAB_NODES[@]}"; do
	lab_assert_xfrm_unchanged "$node" XfrmInTmplMismatch XfrmInNoStates XfrmOutNoStates
	lab_check "$node: XfrmInTmplMismatch, XfrmInNoStates and XfrmOutNoStates are 0" test \
		"$(lab_xfrm_stat "$node" XfrmInTmplMismatch)$(lab_xfrm_stat "$node" XfrmInNoStates)$(lab_xfrm_stat "$node" XfrmOutNoStates)" = 000
done
# meshcryptctl xfrm-errors reads the counters of the agent's node (node1's): the three above
# are 0, so absent; anything it shows comes with its cause
xfrm_errors=$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" xfrm-errors)
explained() {
	[[ $xfrm_errors == "no xfrm errors (every counter of /proc/net/xfrm_stat is 0)" ]] ||
		! grep -v "; likely: " <<<"$xfrm_errors" | grep -q . &&
		! grep -q "XfrmInTmplMismatch\|XfrmInNoStates\|XfrmOutNoStates" <<<"$xfrm_errors"
}
lab_check "meshcryptctl xfrm-errors on node1 explains what it shows: $(head -c 300 <<<"$xfrm_errors")" explained

# --- 4. the keys, computed independently -------------------------------------------------------
check_key() { # NODE SRC-NODE DST-NODE FAMILY
	local src dst want have
	src=$(lab_ip "$2" "$4") dst=$(lab_ip "$3" "$4")
	want=$(python3 "$LIB/hkdf.py" "$LAB_KEY_FILE" "${5:-1}" "$src" "$dst" "$(lab_boot_id "$2")" "$(lab_boot_id "$3")")
	have=$(key_of "$1" "$src" "$dst" "0x$(printf '%08x' $((256 + ${5:-1})))")
	lab_check "$1: the key of $2 -> $3 (IPv$4, generation ${5:-1}) is HKDF's" test "$want" = "$have"
}
check_key node1 node1 node2 4
check_key node1 node2 node1 4
check_key node1 node1 node3 6
check_key node2 node3 node2 6

# --- 6. restart during traffic ------------------------------------------------------------------
# A TCP stream: one line every 20 ms, each echoed; it must run through without a break.
tcp_stream() { # FROM TO SECONDS
	local port=7999
	ip netns exec "${LAB_NS[$2]}" busybox nc -l -p "$port" -e cat >/dev/null 2>&1 &
	local server=$!
	sleep 0.3
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "${LAB_NS[$1]}" timeout $(($3 + 10)) bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		end=$((SECONDS + $3)) i=0
		while ((SECONDS < end)); do
			echo "$i" >&3; read -r -t 3 got <&3 && [[ $got == "$i" ]] || exit 1
			i=$((i + 1)); sleep 0.02
		done' stream "$(lab_ip "$2" 4)" "$port" "$3"
	local rc=$?
	kill "$server" 2>/dev/null || true
	return "$rc"
}
before=$(lab_xfrm_add_times node1)
log_lines=$(wc -l <"$LAB_DIR/nodes/node1/meshcryptd.log")
lab_ping_flood node2-a node1-a 6 "$LAB_DIR/ping-restart" &
flood=$!
tcp_stream node1-a node3-a 6 >/dev/null 2>&1 &
stream=$!
sleep 1
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
"$LAB_TOPOLOGY" start-agents "$LAB_DIR"
wait "$flood"
lab_check "a TCP stream node1-a -> node3-a runs through a restart of every agent" wait "$stream"
lab_check "a ping flood node2-a -> node1-a loses nothing across the restart ($(lab_ping_lost "$LAB_DIR/ping-restart") lost)" \
	test "$(lab_ping_lost "$LAB_DIR/ping-restart")" = 0
lab_check "the restart deleted and re-created no state (add times unchanged)" \
	test "$before" = "$(lab_xfrm_add_times node1)"
lab_check "a foreign state and policy are untouched by a stop and a start" lab_foreign_untouched node1
lab_check "after the restart node1 changed nothing and nothing failed" lab_not grep -q \
	"re-keyed\|updated in place\|apply failed" <(tail -n +$((log_lines + 1)) "$LAB_DIR/nodes/node1/meshcryptd.log")

# --- 7. faults: objects deleted or changed behind our back --------------------------------------
policy_v4() { lab_exec node1 ip xfrm policy list dir out | grep -q "dst 10.1.2.0/24"; }
leaks_before=$(lab_bpf_counter node1 leak_dropped)
marker=$(lab_marker fault)
lab_capture_start fault
lab_ping_flood node1-a node2-a 3 "$LAB_DIR/ping-fault" &
flood=$!
sleep 0.5
start=$(date +%s%N)
lab_exec node1 ip xfrm policy delete src 0.0.0.0/0 dst 10.1.2.0/24 dir out mark 0xe0 mask 0xf0
lab_wait_until 1 policy_v4 && took=$((($(date +%s%N) - start) / 1000000)) || took=never
lab_check "a deleted out policy is restored within 1 s ($took ms)" test "$took" != never
wait "$flood"
lab_capture_stop fault
lab_check "no plaintext node1-a -> node2-a on the wire meanwhile" \
	test "$(lab_pcap_count "$(lab_pcap fault)" "$(lab_filter_between_pods node1-a node2-a)")" = 0
lab_check "the leak guard dropped what the missing policy let through ($leaks_before -> $(lab_bpf_counter node1 leak_dropped))" \
	test "$(lab_bpf_counter node1 leak_dropped)" -gt "$leaks_before"
lab_check "meshcryptctl bpf-stats says what leak_dropped counts" grep -q \
	"^leak_dropped_total $(lab_bpf_counter node1 leak_dropped): plaintext from managed local pods to peer pods stopped by the leak guard" \
	<<<"$("$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/node1/run" bpf-stats)"

out_state() { lab_exec node1 ip xfrm state list src 192.168.100.1 dst 192.168.100.2 | grep -q 'spi 0x00000101'; }
start=$(date +%s%N)
lab_exec node1 ip xfrm state delete src 192.168.100.1 dst 192.168.100.2 proto esp spi 0x101
lab_wait_until 1 out_state && took=$((($(date +%s%N) - start) / 1000000)) || took=never
lab_check "a deleted out state is restored within 1 s ($took ms)" test "$took" != never
lab_check "node1-a -> node2-a works again" lab_ping node1-a node2-a 4

key=$(key_of node1 192.168.100.1 192.168.100.2 0x00000101)
lab_exec node1 ip xfrm state update src 192.168.100.1 dst 192.168.100.2 proto esp spi 0x101 \
	reqid $REQID mode tunnel replay-window 128 flag esn aead 'rfc4106(gcm(aes))' "$key" 128 \
	limit time-soft 2 limit time-hard 4
infinite() {
	lab_exec node1 ip -s xfrm state list src 192.168.100.1 dst 192.168.100.2 |
		grep -q 'expire add: soft 0(sec), hard 0(sec)'
}
lab_check "a lifetime set behind our back is lifted again (the state never expires)" lab_wait_until 2 infinite
sleep 3
lab_check "the state is still there after its hard lifetime would have passed" out_state

# A hard expiry deletes the state at once: the next packet after a packet limit it has passed.
# The kernel's expiry carries no replay state; the restored state must still continue after the
# last sequence number sent, or node2 drops everything from node1 as replays (the ping below).
oseq() {
	lab_exec node1 ip -s xfrm state list src 192.168.100.1 dst 192.168.100.2 |
		sed -n 's/.*oseq-hi \(0x[0-9a-f]*\), oseq \(0x[0-9a-f]*\).*/\1 \2/p' |
		{ read -r hi lo && echo $(((hi << 32) + lo)); }
}
log_lines=$(wc -l <"$LAB_DIR/nodes/node1/meshcryptd.log")
oseq_before=$(oseq)
lab_exec node1 ip xfrm state update src 192.168.100.1 dst 192.168.100.2 proto esp spi 0x101 \
	reqid $REQID mode tunnel replay-window 128 flag esn aead 'rfc4106(gcm(aes))' "$key" 128 \
	limit packet-hard 1
lab_ping node1-a node2-a 4 || true # the packet that finds the limit passed
restored() { grep -q "192.168.100.2 spi 0x101 (out): restored, its sequence numbers continued" \
	<(tail -n +$((log_lines + 1)) "$LAB_DIR/nodes/node1/meshcryptd.log"); }
lab_check "a hard-expired out state comes back continuing its sequence numbers (oseq $oseq_before before)" \
	lab_wait_until 2 restored
lab_check "the restored state starts after the expired one's last sequence number ($(oseq) >= $oseq_before)" \
	test "$(oseq)" -ge "$oseq_before"
lab_check "node1-a -> node2-a works after the expiry (node2 accepts the sequence numbers)" \
	lab_ping node1-a node2-a 4

# --- 8. inbound = require / permit ---------------------------------------------------------------
received() { # NODE-POD PORT: starts a capture in the pod for one UDP datagram to PORT
	timeout 4 ip netns exec "${LAB_NS[$1]}" tcpdump -c 1 -n -i eth0 "udp port $2" >"$LAB_DIR/recv-$2" 2>&1 &
	capture=$!
}
spoof() { # FAMILY PORT: node3 forges a datagram from node2-a to node1-a
	lab_exec node3 python3 "$LIB/spoof.py" "$(lab_ip node2-a "$1")" "$(lab_ip node1-a "$1")" "$2" spoofed
}
drops_before=$(lab_bpf_counter node1 strict_drop)
for f in 4 6; do
	received node1-a "900$f"
	sleep 1
	spoof "$f" "900$f"
	wait "$capture" || true
	lab_check "inbound = require: spoofed IPv$f plaintext from managed node2-a is not delivered" \
		lab_not grep -q "UDP" "$LAB_DIR/recv-900$f"
done
lab_check "inbound = require: node1 counted the drops ($drops_before -> $(lab_bpf_counter node1 strict_drop))" \
	test "$(lab_bpf_counter node1 strict_drop)" -ge $((drops_before + 2))
sed -i 's/^inbound = require/inbound = permit/' "$LAB_DIR/nodes/node1/meshcryptd.conf"
kill -HUP "$(lab_agent_pid node1)"
sleep 2
for f in 4 6; do
	received node1-a "901$f"
	sleep 1
	spoof "$f" "901$f"
	wait "$capture" || true
	lab_check "inbound = permit: the same IPv$f plaintext is delivered" grep -q "UDP" "$LAB_DIR/recv-901$f"
done
sed -i 's/^inbound = permit/inbound = require/' "$LAB_DIR/nodes/node1/meshcryptd.conf"
kill -HUP "$(lab_agent_pid node1)"

# --- 9. rotation 1 -> 2 during traffic ------------------------------------------------------------
in_states() { # GEN: every node holds in states of GEN for both peers and families
	local node spi
	spi=$(printf '0x%08x' $((256 + $1)))
	for node in "${LAB_NODES[@]}"; do
		[[ $(lab_exec "$node" ip xfrm state list | grep -c "spi $spi reqid $REQID") -ge 4 ]] || return 1
	done
}
out_policies_use() { # GEN
	local node spi
	spi=$(printf '0x%08x' $((256 + $1)))
	for node in "${LAB_NODES[@]}"; do
		[[ $(lab_exec "$node" ip xfrm policy list dir out | grep -c "spi $spi reqid $REQID") == 4 ]] || return 1
	done
}
no_in_states() { # GEN: no node holds states of GEN any more
	local node spi
	spi=$(printf '0x%08x' $((256 + $1)))
	for node in "${LAB_NODES[@]}"; do
		lab_exec "$node" ip xfrm state list | grep -q "spi $spi reqid $REQID" && return 1
	done
	return 0
}
lab_ping_flood node1-a node2-a 12 "$LAB_DIR/ping-rotation" &
flood=$!
printf '2 rfc4106(gcm(aes)) %s 128\n' "$(od -An -tx1 -N36 /dev/urandom | tr -d ' \n')" >>"$LAB_KEY_FILE"
sighup_all
lab_check "rotation: every node installs in states of generation 2 for all peers" lab_wait_until 5 in_states 2
if [[ $SOURCE == k8s ]]; then
	lab_check "rotation: every node publishes generation 2 once its in states are installed" \
		lab_wait_until 5 lab_published 2
else
	lab_check "rotation: the senders still use generation 1 until the peers advertise 2" out_policies_use 1
	lab_edit_cluster '(.items[] | select(.kind == "MeshcryptNode") | .spec.keyGeneration) = 2'
fi
lab_check "rotation: every out policy switches to generation 2" lab_wait_until 5 out_policies_use 2
check_key node1 node1 node2 4 2
lab_check "rotation: the in states of generation 1 go after the grace period ($GRACE s)" \
	lab_wait_until $((GRACE + 8)) no_in_states 1
wait "$flood"
lab_check "rotation: a ping flood node1-a -> node2-a lost nothing ($(lab_ping_lost "$LAB_DIR/ping-rotation") lost)" \
	test "$(lab_ping_lost "$LAB_DIR/ping-rotation")" = 0

# --- 10. a node reboots (new boot ID) --------------------------------------------------------------
old_key=$(key_of node1 "$(lab_ip node2 4)" "$(lab_ip node1 4)" 0x00000102)
new_boot=$(cat /proc/sys/kernel/random/uuid)
if [[ $SOURCE == k8s ]]; then
	# node2 goes down, its kernel forgets every SA and policy, it comes back with a new boot
	# ID (bound over /proc's in the agent's mount namespace) and publishes it
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR" --node node2
	lab_exec node2 ip xfrm state flush
	lab_exec node2 ip xfrm policy flush
	echo "$new_boot" >"$LAB_DIR/nodes/node2/boot_id"
	lab_in_node node2 mount --bind "$LAB_DIR/nodes/node2/boot_id" /proc/sys/kernel/random/boot_id
	"$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node2
	boot_published() { [[ $(lab_boot_id node2) == "$new_boot" ]]; }
	lab_check "node2 publishes its new boot ID" lab_wait_until 10 boot_published
else
	lab_edit_cluster "(.items[] | select(.metadata.name == \"node2\") | (.spec.bootID // empty)) = \"$new_boot\" |
		(.items[] | select(.kind == \"Node\" and .metadata.name == \"node2\") | .status.nodeInfo.bootID) = \"$new_boot\""
fi
rekeyed() { [[ $(key_of node1 "$(lab_ip node2 4)" "$(lab_ip node1 4)" 0x00000102) != "$old_key" ]]; }
lab_check "a new boot ID of node2 re-keys node1's states with node2" lab_wait_until 5 rekeyed
check_key node1 node2 node1 4 2
check_key node3 node3 node2 6 2
sleep 1
lab_assert_reach node1-a node2-a "$(lab_marker reboot)"
for node in "${LAB_NODES[@]}"; do
	lab_check "$node: XfrmInTmplMismatch is still 0" test "$(lab_xfrm_stat "$node" XfrmInTmplMismatch)" = 0
done

# --- 11. keys from the Secret; a peer leaves ------------------------------------------------------
secret=$(jq -n --arg keys "$(base64 -w0 "$LAB_KEY_FILE")" '{apiVersion: "v1", kind: "Secret",
	metadata: {namespace: "meshcrypt-system", name: "meshcrypt-ipsec-keys"}, data: {keys: $keys}}')
lab_edit_cluster ".items += [$secret]"
before=$(lab_xfrm_add_times node1)
for node in "${LAB_NODES[@]}"; do sed -i '/^key_file = /d' "$LAB_DIR/nodes/$node/meshcryptd.conf"; done
sighup_all
secret_in_use() { grep -q "keys from Secret meshcrypt-system/meshcrypt-ipsec-keys" "$LAB_DIR/nodes/node1/meshcryptd.log"; }
lab_check "without key_file, node1 takes the keys from the Secret in the cluster file" lab_wait_until 10 secret_in_use
sleep 2
lab_check "the same keys from the Secret change no state (add times unchanged)" \
	test "$before" = "$(lab_xfrm_add_times node1)"
lab_check "node1-a -> node2-a still works" lab_ping node1-a node2-a 4
lab_edit_cluster 'del(.items[] | select(.kind == "MeshcryptNode" and .metadata.name == "node3"))'
node3_gone() { [[ $(ours node1 state) == 4 && $(ours node1 policy) == 6 ]]; }
lab_check "node3 stops participating: node1 removes its states and out policies" lab_wait_until 5 node3_gone
lab_check "node1 keeps node2's objects and traffic" lab_ping node1-a node2-a 6

# --- secrets: no key byte in anything meshcrypt prints ------------------------------------------
# Every output of every node (its log, status, --json status, peers, pods, explain, bpf-stats,
# xfrm-errors, /metrics) against every key: the key file's (all generations) and the keys derived
# from them that the kernel holds; any 8 bytes of one in a row, in either case, is a leak.
outputs=$LAB_DIR/all-outputs
: >"$outputs"
for node in "${LAB_NODES[@]}"; do
	cat "$LAB_DIR/nodes/$node/meshcryptd.log" >>"$outputs"
	for cmd in status "--json status" peers pods bpf-stats xfrm-errors \
		"explain $(lab_ip "$node-a" 4) $(lab_ip node2-a 4)"; do
		# shellcheck disable=SC2086 # cmd is a command and its arguments
		"$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/$node/run" $cmd >>"$outputs" 2>&1 || true
	done
	lab_exec "$node" curl -s http://127.0.0.1:9474/metrics >>"$outputs" || true
done
{
	awk '!/^#/ && NF >= 3 { sub(/^0x/, "", $3); print $3 }' "$LAB_KEY_FILE"
	for node in "${LAB_NODES[@]}"; do
		lab_exec "$node" ip xfrm state | awk '$1 == "aead" { sub(/^0x/, "", $3); print $3 }'
	done
} | sort -u >"$LAB_DIR/all-keys"
leaks() {
	local key i
	while read -r key; do
		for ((i = 0; i + 16 <= ${#key}; i += 2)); do
			grep -qiF -- "${key:i:16}" "$outputs" && { echo "${key:i:16}"; return 0; }
		done
	done <"$LAB_DIR/all-keys"
	return 1
}
lab_check "no 8 bytes of any of the $(wc -l <"$LAB_DIR/all-keys") keys (file and derived) in $(wc -l <"$outputs") lines of logs, status, explain and metrics" \
	lab_not leaks

# --- 5. stop and --cleanup ------------------------------------------------------------------------
"$LAB_TOPOLOGY" stop-agents "$LAB_DIR"
lab_check "stopped, node1 keeps its states and policies" test "$(ours node1 state)" = 4
lab_check "meshcryptd --cleanup succeeds on node1" lab_in_node node1 "$MESHCRYPTD" --cleanup \
	--config "$LAB_DIR/nodes/node1/meshcryptd.conf"
lab_check "after --cleanup node1 holds no state or policy of ours" \
	test "$(ours node1 state)$(ours node1 policy)" = 00
lab_check "a foreign state and policy are untouched by --cleanup" lab_foreign_untouched node1
lab_check "node2 keeps its objects" test "$(ours node2 policy)" = 6
[[ $LAB_FAILURES == 0 ]] || lab_xfrm_list node1 | sed 's/^/# /'
[[ $LAB_FAILURES == 0 ]] || sed 's/^/# /' "$LAB_DIR/nodes/node1/meshcryptd.log"
lab_finish
