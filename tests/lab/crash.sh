#!/bin/bash
# Crash safety (issue 16): node1's meshcryptd is killed with SIGKILL at random points of a large
# start-up reconcile, again and again, and must always converge to exactly the desired state.
# node1 sees the 3-node lab plus PEERS participating peers that exist nowhere (their states and
# policies are installed all the same) with their managed pods, and LOCAL more managed pods of
# its own: 2,008 states, 1,108 policies and 4,400 BPF map entries, a few seconds under TCG. A
# foreign state and policy (reqid 7) sit on node1 from the start. A clean start is the
# reference: its counts, and how long its reconcile takes (to its last xfrm change). Then each
# of ROUNDS rounds stops the agent, gives the next start work to do, in turn:
#   install  the extra peers' states and policies deleted behind the agent's back (all to be
#            added again); this round kills twice in a row, so the second start resumes what a
#            killed one left and is killed too;
#   change   a random third of the extra peers gone (objects, map entries and indices to
#            release), another third re-keyed (a new boot ID: each state deleted and added
#            again), a random half of the extra local pods gone;
#   restore  everyone back;
#   rekey    every extra peer re-keyed;
# starts the agent and kills it after a random delay within the clean start's reconcile time,
# then starts it again and waits until it converges. After every round: node1's states and
# policies of our reqid are exactly the desired ones (the counts; no two states with the same
# dst/spi/mark or src/dst/spi, no two policies with the same selector/dir/mark or selector/dir),
# every in state's peer index, out state, out policy and BPF map entry agrees with the peers map,
# the BPF maps hold the desired numbers of entries, the foreign state and policy are untouched
# (same text, same add time), and the log of the start that converged shows no failure. An xfrm
# monitor counts the changes each start makes: a kill interrupted work when a later start of
# the round still makes changes, and at least half of the kills must have. Throughout the
# rounds node1-a pings node2-a (IPv4 and IPv6) and node1's wire must never carry their
# plaintext. The last round ends in the clean start's cluster: the counts must be the clean
# start's, and node1-a <-> node2-a works, only as ESP.
#
# Why a convergence after every round rather than 20 kills in a row and one at the end: each
# kill's recovery is checked on its own (a state that only one crash point leaves is not papered
# over by the next starts, and a failure names its round, mode and delay), and every start has
# real work (after a converged restart, the next round changes what must be done; 20 kills in
# a row would leave the later starts nothing to do). Kills in a row are covered by install.
#
# Environment: LAB_CRASH_PEERS (default 500), LAB_CRASH_ROUNDS (20), LAB_CRASH_SEED (random;
# printed, and the same seed draws the same rounds and delays).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

lab_require_root
lab_require_cmds jq tcpdump python3 nsenter bpftool busybox
lab_require_kernel veth bridge clsact esp
: "${MESHCRYPTD:?set MESHCRYPTD}" "${MESHCRYPTCTL:?set MESHCRYPTCTL}"

REQID=28003
PEERS=${LAB_CRASH_PEERS:-500} # extra participating peers of node1, x1..xPEERS
PODS=2                        # managed pods per extra peer, plus one outside its CIDRs on every 10th
LOCAL=100                     # extra managed pods of node1 (no interface: map entries only)
ROUNDS=${LAB_CRASH_ROUNDS:-20}
SEED=${LAB_CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
RANDOM=$SEED
MODES=(install change restore rekey)
lab_log "seed $SEED (LAB_CRASH_SEED=$SEED draws the same rounds), $PEERS extra peers, $ROUNDS rounds"

lab_up --nodes 3 --backend xfrm --attach tc
NODE1=${LAB_NS[node1]}
RUN=$LAB_DIR/nodes/node1/run
LOG=$LAB_DIR/nodes/node1/meshcryptd.log
BPFFS=$LAB_DIR/nodes/node1/bpffs/meshcrypt
CLUSTER1=$LAB_DIR/cluster-node1.json
sed -i "s|^file = .*|file = $CLUSTER1|" "$LAB_DIR/nodes/node1/meshcryptd.conf"

now_us() { echo "${EPOCHREALTIME/./}"; }
since_ms() { echo $((($(now_us) - $1) / 1000)); }

# --- node1's cluster --------------------------------------------------------------------------
# EPOCH[k]: 0 while extra peer xk does not participate, else the epoch of its boot ID (a new
# epoch is a reboot: new keys). LOCAL_ON[j]: whether extra local pod node1-mj exists.
declare -a EPOCH=() LAST_EPOCH=() LOCAL_ON=()
for ((k = 1; k <= PEERS; k++)); do EPOCH[k]=1 LAST_EPOCH[k]=1; done
for ((j = 1; j <= LOCAL; j++)); do LOCAL_ON[j]=1; done

# Writes node1's cluster file (by rename, as an editor would): the lab's, plus the extra peers
# (Node, MeshcryptNode, pods) and extra local pods that EPOCH and LOCAL_ON name. Peer xk: node
# addresses 172.16.k/200.k%200+1 and fd00:200::k, pod CIDRs 10.(128+k/250).(k%250).0/24 and
# fd00:2:k::/64; on every 10th peer one more pod outside them (10.250.., fd00:250::k).
write_cluster() {
	local spec='{"peers": [' sep='' k j
	for ((k = 1; k <= PEERS; k++)); do
		((EPOCH[k])) || continue
		spec+="${sep}[$k,${EPOCH[k]}]" sep=,
	done
	spec+='], "local": [' sep=''
	for ((j = 1; j <= LOCAL; j++)); do
		((LOCAL_ON[j])) || continue
		spec+="$sep$j" sep=,
	done
	spec+=']}'
	jq --argjson spec "$spec" --argjson pods "$PODS" '
		def v4(k): "172.16.\(k / 200 | floor).\(k % 200 + 1)";
		def net4(k): "10.\(128 + (k / 250 | floor)).\(k % 250)";
		def cidrs(k): ["\(net4(k)).0/24", "fd00:2:\(k)::/64"];
		def boot(k; e): "00000000-0000-4000-8000-" + ("000000000000\(e * 10000 + k)" | .[-12:]);
		def pod(name; node; ip4; ip6): {apiVersion: "v1", kind: "Pod",
			metadata: {namespace: "lab-enc", name: name}, spec: {nodeName: node},
			status: {phase: "Running", podIP: ip4, podIPs: [{ip: ip4}, {ip: ip6}]}};
		.items += [$spec.peers[] as [$k, $e] |
			{apiVersion: "v1", kind: "Node", metadata: {name: "x\($k)"}, spec: {podCIDRs: cidrs($k)},
			 status: {addresses: [{type: "InternalIP", address: v4($k)},
					      {type: "InternalIP", address: "fd00:200::\($k)"}],
				  nodeInfo: {bootID: boot($k; $e)}}},
			{apiVersion: "meshcrypt.io/v1alpha1", kind: "MeshcryptNode", metadata: {name: "x\($k)"},
			 spec: {addresses: [v4($k), "fd00:200::\($k)"], bootID: boot($k; $e), keyGeneration: 1,
				podCIDRs: cidrs($k)}},
			(range(1; $pods + 1) as $p |
				pod("x\($k)-p\($p)"; "x\($k)"; "\(net4($k)).\(10 + $p)"; "fd00:2:\($k)::\(10 + $p)")),
			(if $k % 10 == 0 then pod("x\($k)-out"; "x\($k)"; "10.250.\($k / 200 | floor).\($k % 200 + 1)";
				"fd00:250::\($k)") else empty end)
		] + [$spec.local[] as $j | pod("node1-m\($j)"; "node1"; "10.1.1.\(100 + $j)"; "fd00:1:1::\(100 + $j)")]
	' "$LAB_CLUSTER_FILE" >"$CLUSTER1.new"
	mv "$CLUSTER1.new" "$CLUSTER1"
}

# What node1 must hold for EPOCH and LOCAL_ON (DESIGN.md §6, §5), into EXPECT: per peer 2
# families x (in + out) states and an out policy per pod CIDR, 2 more per pod outside them,
# in + fwd per family; map entries per address. The clean start proves the formula.
declare -A EXPECT=()
expect() {
	local k j n=2 out=0 loc=1 # node2, node3; node1-a
	for ((k = 1; k <= PEERS; k++)); do
		((EPOCH[k])) || continue
		n=$((n + 1))
		((k % 10)) || out=$((out + 1))
	done
	for ((j = 1; j <= LOCAL; j++)); do loc=$((loc + LOCAL_ON[j])); done
	EXPECT=([states]=$((4 * n)) [policies]=$((4 + 2 * n + 2 * out)) [local_pods]=$((2 * loc))
		[remote_pods]=$((2 * (2 + (n - 2) * PODS + out))) [peer_prefixes]=$((2 * n + 2 * out))
		[peers]=$((2 * n)))
}

# --- reading node1 --------------------------------------------------------------------------
ours() { ip -n "$NODE1" xfrm "$1" list | grep -c "reqid $REQID" || true; }

# Snapshot of node1 into files: our states ("src dst spi mark") and policies ("selector dir
# mark tmpl-src tmpl-dst spi"), one per line, and the BPF maps as bpftool dumps them.
snapshot() {
	ip -n "$NODE1" xfrm state list | awk -v reqid="$REQID" '
		function flush() { if (r == reqid) print src, dst, spi, mark }
		/^src/ { flush(); src = $2; dst = $4; r = ""; spi = ""; mark = "-" }
		$1 == "proto" { for (i = 2; i < NF; i++) { if ($i == "spi") spi = $(i + 1); if ($i == "reqid") r = $(i + 1) } }
		$1 == "mark" { mark = $2 }
		END { flush() }' >"$LAB_DIR/states"
	ip -n "$NODE1" xfrm policy list | awk -v reqid="$REQID" '
		function flush() { if (r == reqid) print sel, dir, mark, tsrc, tdst, spi }
		/^src/ { flush(); sel = $0; sub(/ +$/, "", sel); gsub(/ /, "_", sel); r = ""; spi = "-"; mark = "-" }
		$1 == "dir" { dir = $2 }
		$1 == "mark" { mark = $2 }
		$1 == "tmpl" { tsrc = $3; tdst = $5 }
		$1 == "proto" { for (i = 2; i < NF; i++) { if ($i == "spi") spi = $(i + 1); if ($i == "reqid") r = $(i + 1) } }
		END { flush() }' >"$LAB_DIR/policies"
	# shellcheck disable=SC2016 # expanded by sh
	lab_in_node node1 sh -c 'for m in local_pods remote_pods peer_prefixes peers; do
		bpftool -j map dump pinned "$0/$m" >"$1/map-$m.json" || exit 1; done' "$BPFFS" "$LAB_DIR"
}

# audit: reads the snapshot into AUDIT: counts, duplicates, and whether kernel objects and maps
# agree with the peers map (peer address -> index): each in state's mark carries the index of
# its source, each out state and out policy leads to a peer, each out policy's prefix is in
# peer_prefixes for that same peer, and no map entry names an index no peer has.
declare -A AUDIT=()
audit() {
	local key value
	AUDIT=([first]="no snapshot")
	for key in states policies state_dups state_pair_dups policy_dups policy_sel_dups local_pods \
		remote_pods peer_prefixes peers inconsistent; do AUDIT[$key]="?"; done
	snapshot || return 0
	while read -r key value; do AUDIT[$key]=$value; done < <(python3 - "$LAB_DIR" <<'EOF'
import collections, ipaddress, json, sys

d = sys.argv[1]
def addr(b):
    a = ipaddress.IPv6Address(bytes(b))
    return str(a.ipv4_mapped or a)
def net(k):
    a = ipaddress.IPv6Address(bytes(k["bytes"]))
    if a.ipv4_mapped:
        return ipaddress.ip_network(f"{a.ipv4_mapped}/{k['prefixlen'] - 96}", strict=False)
    return ipaddress.ip_network(f"{a}/{k['prefixlen']}", strict=False)
maps = {m: json.load(open(f"{d}/map-{m}.json"))
        for m in ("local_pods", "remote_pods", "peer_prefixes", "peers")}
peers = {addr(e["formatted"]["key"]["bytes"]): e["formatted"]["value"] for e in maps["peers"]}
prefixes = {net(e["formatted"]["key"]): e["formatted"]["value"] for e in maps["peer_prefixes"]}
states = [l.split() for l in open(f"{d}/states")]
policies = [l.split() for l in open(f"{d}/policies")]
bad = []
for src, dst, spi, mark in states:
    if mark != "-":
        index = int(mark.split("/")[0], 16) >> 16
        if peers.get(src) != index:
            bad.append(f"in state from {src} has index {index}, the peers map {peers.get(src)}")
    elif dst not in peers:
        bad.append(f"out state to {dst}: no such peer")
for sel, dir, mark, tsrc, tdst, spi in policies:
    if dir != "out":
        continue
    prefix = ipaddress.ip_network(sel.split("_")[3])
    if tdst not in peers:
        bad.append(f"out policy to {prefix} leads to {tdst}: no such peer")
    elif prefixes.get(prefix) != peers[tdst]:
        bad.append(f"out policy to {prefix} leads to peer {peers[tdst]}, peer_prefixes says {prefixes.get(prefix)}")
known = set(peers.values())
for m in ("remote_pods", "peer_prefixes"):
    for e in maps[m]:
        if e["formatted"]["value"] not in known:
            bad.append(f"{m} entry with index {e['formatted']['value']}, which no peer has")
def dups(rows):
    return sum(n - 1 for n in collections.Counter(rows).values())
print("states", len(states))
print("policies", len(policies))
print("state_dups", dups((s[1], s[2], s[3]) for s in states))          # dst spi mark
print("state_pair_dups", dups((s[0], s[1], s[2]) for s in states))     # src dst spi
print("policy_dups", dups((p[0], p[1], p[2]) for p in policies))       # selector dir mark
print("policy_sel_dups", dups((p[0], p[1]) for p in policies))         # selector dir
for m, v in maps.items():
    print(m, len(v))
print("inconsistent", len(bad))
print("first", bad[0] if bad else "-")
EOF
	)
}

# The desired counts, and nothing that audit finds wrong.
exact() {
	local k
	for k in "${!EXPECT[@]}"; do [[ ${AUDIT[$k]:-} == "${EXPECT[$k]}" ]] || return 1; done
	[[ "${AUDIT[state_dups]}${AUDIT[state_pair_dups]}${AUDIT[policy_dups]}${AUDIT[policy_sel_dups]}${AUDIT[inconsistent]}" == 00000 ]]
}
counts() { echo "${AUDIT[states]} states, ${AUDIT[policies]} policies, maps ${AUDIT[local_pods]}/${AUDIT[remote_pods]}/${AUDIT[peer_prefixes]}/${AUDIT[peers]}"; }
wanted() { echo "${EXPECT[states]} states, ${EXPECT[policies]} policies, maps ${EXPECT[local_pods]}/${EXPECT[remote_pods]}/${EXPECT[peer_prefixes]}/${EXPECT[peers]}"; }

# Converged: the agent has nothing queued and the kernel holds the desired number of objects
# (the cheap test, polled; audit then checks everything).
converged() {
	local status
	status=$("$MESHCRYPTCTL" --run-dir "$RUN" status 2>/dev/null) || return 1
	[[ $status == *"queue: 0 waiting"* && $(ours state) == "${EXPECT[states]}" &&
		$(ours policy) == "${EXPECT[policies]}" ]]
}

# --- the foreign objects, before any agent runs ----------------------------------------------
lab_add_foreign_xfrm node1

# --- the clean start: the reference ----------------------------------------------------------
write_cluster
expect
"$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node2
"$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node3
# How long the reconcile of a clean start takes: from the return of start-agents to the last
# change the kernel reports (polling would add its own slowness under TCG). The monitor runs
# on through the rounds: the changes each start makes tell whether a kill interrupted work.
ip -rc 16777216 -ts -n "$NODE1" xfrm monitor >"$LAB_DIR/monitor" 2>&1 &
MONITOR=$!
LAB_AGENT_SETTLE=0 "$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node1
t0=$(now_us)
lab_check "node1 converges on a clean start ($(wanted))" lab_wait_until 120 converged
# states and policies added, updated or deleted (not the async replay events of busy states)
CHANGE='^\[[^]]*\] \(Deleted \|Updated \)\?src '
events() { grep -c "$CHANGE" "$LAB_DIR/monitor" || true; }
# the number of changes once the monitor has written all it has (it lags behind under TCG; it
# may also miss some in a burst, but never all of what a start does)
settled_events() {
	local a b i
	b=$(events)
	for ((i = 0; i < 30; i++)); do
		a=$b
		sleep 0.3
		b=$(events)
		((a != b)) || break
	done
	echo "$b"
}
settled_events >/dev/null
# change_ms FIRST LAST T0: when change number LAST (counted from 1) happened, in ms after T0;
# nothing when FIRST > LAST
change_ms() {
	local when
	(($1 <= $2)) || return 0
	when=$(grep "$CHANGE" "$LAB_DIR/monitor" | sed -n "$2p" | cut -d' ' -f1 | tr -d '[]')
	echo $((($(date -d "$when" +%s%6N) - $3) / 1000))
}
FIRST_MS=$(change_ms 1 1 "$t0") CONVERGE_MS=$(change_ms 1 "$(events)" "$t0")
audit
lab_check "clean start: the first change after $FIRST_MS ms, the last after $CONVERGE_MS ms: $(counts), no duplicates, all consistent" exact
declare -A REFERENCE=()
for k in states policies local_pods remote_pods peer_prefixes peers; do REFERENCE[$k]=${AUDIT[$k]}; done
lab_check "a foreign state and policy are untouched by the clean start" lab_foreign_untouched node1
# Kills fall within the first WINDOW ms of a start of that mode: at first the clean start's
# reconcile time; a mode whose start turns out to finish sooner (a kill found nothing left to
# do) gets the time of that start's last change instead.
declare -A WINDOW=()
for mode in "${MODES[@]}"; do WINDOW[$mode]=$CONVERGE_MS; done

# --- traffic and a capture on node1's wire, through every round -------------------------------
lab_capture_start rounds node1
declare -A FLOOD=()
for f in 4 6; do
	ip netns exec "${LAB_NS[node1-a]}" busybox ping "-$f" -q -i 0.2 "$(lab_ip node2-a "$f")" \
		>"$LAB_DIR/flood$f" 2>&1 &
	FLOOD[$f]=$!
done

# kill_during_start DELAY-MS: starts node1's agent and kills it (SIGKILL) DELAY ms after
# start-agents returned (KILL_T0); the agent must still be running then. KILLED says where it
# stood.
kill_during_start() {
	local t0 pid left
	if ! LAB_AGENT_SETTLE=0 "$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node1; then
		KILLED="did not start"
		return 1
	fi
	t0=$(now_us) KILL_T0=$(now_us)
	pid=$(lab_agent_pid node1)
	left=$(($1 * 1000 - ($(now_us) - t0)))
	((left <= 0)) || sleep "$((left / 1000000)).$(printf '%06d' $((left % 1000000)))"
	if ! kill -KILL "$pid" 2>/dev/null; then
		KILLED="not running any more at $1 ms (it exited by itself)"
		return 1
	fi
	KILLED="at $(since_ms "$t0") ms"
	while [[ -e /proc/$pid ]]; do sleep 0.05; done
	KILLED+=" ($(ours state) states, $(ours policy) policies)"
}

# Makes the next start work: see the modes at the top.
prepare() {
	local k j
	case $1 in
	install)
		# every policy and state of ours that leads to or comes from an extra peer
		snapshot
		awk '$2 ~ /^172\.16\.|^fd00:200:/ || $1 ~ /^172\.16\.|^fd00:200:/ {
			print "xfrm state delete src", $1, "dst", $2, "proto esp spi", $3,
				($4 == "-" ? "" : "mark " substr($4, 1, index($4, "/") - 1) " mask " substr($4, index($4, "/") + 1)) }
		' "$LAB_DIR/states" >"$LAB_DIR/delete"
		awk '$5 ~ /^172\.16\.|^fd00:200:/ { split($1, s, "_"); split($3, m, "/")
			print "xfrm policy delete src", s[2], "dst", s[4], "dir", $2, "mark", m[1], "mask", m[2] }
		' "$LAB_DIR/policies" >>"$LAB_DIR/delete"
		ip -n "$NODE1" -b "$LAB_DIR/delete"
		;;
	change)
		for ((k = 1; k <= PEERS; k++)); do
			case $((RANDOM % 3)) in
			0) EPOCH[k]=0 ;;
			1) ((EPOCH[k] == 0)) || EPOCH[k]=$((EPOCH[k] + 1)) ;;
			esac
			((EPOCH[k] == 0)) || LAST_EPOCH[k]=${EPOCH[k]}
		done
		for ((j = 1; j <= LOCAL; j++)); do LOCAL_ON[j]=$((RANDOM % 2)); done
		;;
	restore)
		for ((k = 1; k <= PEERS; k++)); do EPOCH[k]=${LAST_EPOCH[k]}; done
		for ((j = 1; j <= LOCAL; j++)); do LOCAL_ON[j]=1; done
		;;
	rekey)
		for ((k = 1; k <= PEERS; k++)); do
			((EPOCH[k] == 0)) || EPOCH[k]=$((EPOCH[k] + 1))
			((EPOCH[k] == 0)) || LAST_EPOCH[k]=${EPOCH[k]}
		done
		;;
	esac
	write_cluster
	expect
}

# --- the rounds -----------------------------------------------------------------------------
# A kill interrupted the work of a start when a later start of the round still makes changes
# (nothing in the cluster changes between them).
failures_before=$LAB_FAILURES KILLS=0 INTERRUPTED=0
for ((round = 1; round <= ROUNDS; round++)); do
	mode=${MODES[(round - 1) % ${#MODES[@]}]}
	# the last round ends in the cluster of the clean start
	[[ $round != "$ROUNDS" || $mode != change ]] || mode=restore
	kills=1
	[[ $mode == install ]] && kills=2
	"$LAB_TOPOLOGY" stop-agents "$LAB_DIR" --node node1
	prepare "$mode"
	report="" changes=() last=() before=$(settled_events)
	for ((n = 0; n < kills; n++)); do
		delay=$((RANDOM * WINDOW[$mode] / 32768))
		if ! kill_during_start "$delay"; then
			lab_fail "round $round ($mode): node1's agent $KILLED; its log:"
			tail -n 20 "$LOG" | sed 's/^/# /'
		fi
		after=$(settled_events)
		changes+=($((after - before)))
		last+=("$(change_ms $((before + 1)) "$after" "$KILL_T0")")
		before=$after
		report+="${report:+, }killed after $delay ms $KILLED, ${changes[n]} changes made"
	done
	log_lines=$(wc -l <"$LOG")
	LAB_AGENT_SETTLE=0 "$LAB_TOPOLOGY" start-agents "$LAB_DIR" --node node1
	t0=$(now_us)
	lab_wait_until 120 converged || true
	took=$(since_ms "$t0")
	changes+=($(($(settled_events) - before)))
	note="" left=0
	for ((n = kills - 1; n >= 0; n--)); do
		left=$((left + changes[n + 1])) # what the starts after kill n still did
		KILLS=$((KILLS + 1))
		if ((left)); then
			INTERRUPTED=$((INTERRUPTED + 1))
		elif ((${last[n]:-0} > 0)); then
			WINDOW[$mode]=${last[n]}
			note=" (a start's work was done at ${last[n]} ms: $mode's kills fall within that from now on)"
		fi
	done
	audit
	lab_check "round $round ($mode): $report; restarted: ${changes[kills]} changes left$note, converged in $took ms: $(counts)" exact
	[[ ${AUDIT[inconsistent]} == 0 ]] || lab_log "first inconsistency: ${AUDIT[first]}"
	exact || lab_log "wanted: $(wanted); duplicates: ${AUDIT[state_dups]} ${AUDIT[state_pair_dups]} ${AUDIT[policy_dups]} ${AUDIT[policy_sel_dups]}"
	lab_check "round $round: the foreign state and policy are untouched" lab_foreign_untouched node1
	# not anchored: a line a killed agent left half-written is completed by the next one's first
	tail -n +$((log_lines + 1)) "$LOG" | grep -v "the boot ID published for this node" |
		grep "error: \|warning: \|apply failed" >"$LAB_DIR/failures" || true
	lab_check "round $round: the start that converged logged no failure$(head -c 300 "$LAB_DIR/failures" | sed 's/^/; /')" \
		test ! -s "$LAB_DIR/failures"
	((LAB_FAILURES == failures_before)) || break # the rest would only repeat it
done
kill "$MONITOR"
wait "$MONITOR" || true
# Else the rounds proved little: the kills came after the work was done.
lab_check "$INTERRUPTED of $KILLS kills interrupted a start's work (a later start still made changes): at least half" \
	test $((2 * INTERRUPTED)) -ge "$KILLS"

for f in 4 6; do kill -INT "${FLOOD[$f]}" 2>/dev/null || true; done
for f in 4 6; do wait "${FLOOD[$f]}" || true; done
lab_capture_stop rounds
rc=0
lab_only_esp "$(lab_pcap rounds)" node1-a node2-a || rc=$?
lab_record "through every round and kill node1-a <-> node2-a left node1 only as ESP ($LAB_COUNTS)" "$rc"
lab_log "pings node1-a -> node2-a through the rounds: $(awk '/packets transmitted/' "$LAB_DIR/flood4") (IPv4), $(awk '/packets transmitted/' "$LAB_DIR/flood6") (IPv6)"

# --- the end state: the clean start's ---------------------------------------------------------
for k in states policies local_pods remote_pods peer_prefixes peers; do
	lab_check "after the last restart $k: ${AUDIT[$k]} = the clean start's ${REFERENCE[$k]}" \
		test "${AUDIT[$k]}" = "${REFERENCE[$k]}"
done
lab_check "after the last restart no duplicate state (dst/spi/mark: ${AUDIT[state_dups]}, src/dst/spi: ${AUDIT[state_pair_dups]}) or policy (selector/dir/mark: ${AUDIT[policy_dups]}, selector/dir: ${AUDIT[policy_sel_dups]})" \
	test "${AUDIT[state_dups]}${AUDIT[state_pair_dups]}${AUDIT[policy_dups]}${AUDIT[policy_sel_dups]}" = 0000
lab_check "after the last restart the foreign state and policy are untouched" lab_foreign_untouched node1
lab_check "after the last restart meshcryptd logged no failure" test ! -s "$LAB_DIR/failures"
marker=$(lab_marker crash)
lab_capture_start wire
lab_assert_reach node1-a node2-a "$marker"
lab_capture_stop wire
lab_assert_only_esp "$(lab_pcap wire)" node1-a node2-a
lab_assert_marker_absent "$(lab_pcap wire)" "$marker"
if ((LAB_FAILURES)); then
	lab_log "seed $SEED"
	lab_xfrm_list node1 | grep -v '^\s*aead' | tail -n 60 | sed 's/^/# /'
	tail -n 60 "$LOG" | sed 's/^/# /'
fi
lab_finish
