# shellcheck shell=bash
# Helpers for dataplane tests (integration suite on the host kernel, lab suite in the VM).
# Source it from a bash test that runs with `set -euo pipefail`:
#
#   source "$(dirname "$0")/../lab/lib/lab.sh"     # path relative to the test
#   lab_require_root; lab_require_kernel veth bridge esp
#   lab_up --nodes 3                                # topology, torn down on exit
#   lab_capture_start wire                          # on the bridge: what really is on the wire
#   lab_assert_reach node1-a node2-a "$marker"      # ICMP + TCP, both ways, IPv4 + IPv6
#   lab_capture_stop wire
#   lab_assert_only_esp "$(lab_pcap wire)" node1-a node2-a
#   lab_finish                                      # exit 1 if any assertion failed
#
# Assertions print "ok - ..." or "FAIL - ..." and go on, so one run shows every failure;
# lab_finish turns them into the exit status. Skips exit 77 with the reason.
# Names: nodes are node1..nodeN, pods are NODE-POD (node1-a); lab.env (see tests/lab/topology)
# holds their namespaces (LAB_NS), addresses (LAB_IP4, LAB_IP6) and the rest.

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_TOPOLOGY=$(cd "$LAB_LIB_DIR/.." && pwd)/topology
LAB_FAILURES=0
LAB_TCP_PORT=7000
LAB_RUN_DIR=
LAB_COUNTS=
declare -gA LAB_CAPTURE_PID=() LAB_CAPTURE_FILE=()

# --- outcome ----------------------------------------------------------------------------------

lab_log() { echo "# $*"; }
lab_ok() { echo "ok - $*"; }
lab_fail() {
	echo "FAIL - $*"
	LAB_FAILURES=$((LAB_FAILURES + 1))
}
lab_skip() {
	echo "SKIP: $*"
	exit 77
}

# Records an outcome: lab_record DESCRIPTION STATUS (0 = passed).
lab_record() {
	if (($2 == 0)); then lab_ok "$1"; else lab_fail "$1"; fi
}

# Records the outcome of a command: lab_check DESCRIPTION COMMAND...
lab_check() {
	local what=$1 rc=0
	shift
	"$@" || rc=$?
	lab_record "$what" "$rc"
}

# lab_not COMMAND...: succeeds when the command fails (for lab_check).
lab_not() { ! "$@"; }

lab_finish() {
	if ((LAB_FAILURES)); then
		echo "$LAB_FAILURES assertion(s) failed"
		exit 1
	fi
	echo "all assertions passed"
}

# --- prerequisites ----------------------------------------------------------------------------

lab_require_root() {
	((EUID == 0)) || lab_skip "needs root (network namespaces)"
}

lab_require_cmds() {
	local cmd
	for cmd in "$@"; do
		command -v "$cmd" >/dev/null || lab_skip "$cmd not installed (tests/lab/install-deps)"
	done
}

# Probes kernel features in a scratch namespace: veth, bridge, esp (ESP with AES-GCM SAs),
# wireguard, clsact. A missing one is a skip, not a failure: the host kernel may lack ESP, and
# the lab VM has everything.
lab_require_kernel() {
	local ns probe feature ok
	ns=mclprobe$$
	ip netns add "$ns" || lab_skip "cannot create a network namespace"
	for feature in "$@"; do
		case $feature in
		veth) probe="ip link add p0 type veth peer name p1" ;;
		bridge) probe="ip link add b0 type bridge" ;;
		esp) probe="ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 mode tunnel
			aead rfc4106(gcm(aes)) 0x$(printf '%072d' 0) 128" ;;
		wireguard) probe="ip link add w0 type wireguard" ;;
		clsact) probe="tc qdisc add dev lo clsact" ;;
		*) ip netns del "$ns"; lab_fail "unknown kernel feature $feature"; lab_finish ;;
		esac
		ok=1
		# shellcheck disable=SC2086 # the probe is a word list on purpose
		ip netns exec "$ns" $probe >/dev/null 2>&1 || ok=0
		if ((!ok)); then
			ip netns del "$ns"
			lab_skip "kernel $(uname -r) lacks $feature (run this suite in the lab VM: tests/lab/vm)"
		fi
	done
	ip netns del "$ns"
}

# --- topology ---------------------------------------------------------------------------------

# Builds a topology (arguments as for `topology up`), loads its lab.env, and arranges for
# everything to be torn down when the test exits, however it exits.
lab_up() {
	[[ -z $LAB_RUN_DIR ]] || { echo "lab: one topology per test" >&2; return 2; }
	trap lab_cleanup EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	# The directory is made here so that teardown knows it even when `up` fails half-way.
	LAB_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mclab.XXXXXX")
	"$LAB_TOPOLOGY" up --dir "$LAB_RUN_DIR" "$@" >/dev/null
	# shellcheck source=/dev/null
	source "$LAB_RUN_DIR/lab.env"
	lab_log "topology up: ${#LAB_NODES[@]} nodes, ${#LAB_PODS[@]} pods, prefix $LAB_PREFIX, in $LAB_RUN_DIR"
}

# Runs on exit: stops captures, stops the agents and deletes the namespaces, removes the run's
# directory (kept with LAB_KEEP=1, for a look at captures and agent logs after a failure).
lab_cleanup() {
	local rc=$? name
	for name in "${!LAB_CAPTURE_PID[@]}"; do
		kill "${LAB_CAPTURE_PID[$name]}" 2>/dev/null || true
	done
	[[ -z $LAB_API_PID ]] || kill "$LAB_API_PID" 2>/dev/null || true
	if [[ -f $LAB_RUN_DIR/lab.env ]]; then
		if [[ ${LAB_KEEP:-0} == 1 ]]; then
			"$LAB_TOPOLOGY" down "$LAB_RUN_DIR" || rc=1
			echo "# kept $LAB_RUN_DIR"
		else
			"$LAB_TOPOLOGY" down --purge "$LAB_RUN_DIR" || rc=1
		fi
	elif [[ -n $LAB_RUN_DIR ]]; then
		rm -rf "$LAB_RUN_DIR"
	fi
	exit "$rc"
}

# lab_exec NAME COMMAND...: runs a command in a node's or pod's namespace.
lab_exec() {
	local name=$1
	shift
	[[ -n ${LAB_NS[$name]:-} ]] || { echo "lab: no node or pod named $name" >&2; return 2; }
	ip netns exec "${LAB_NS[$name]}" "$@"
}

# lab_ip NAME 4|6: the address of a node or pod in that family.
lab_ip() {
	if [[ $2 == 6 ]]; then echo "${LAB_IP6[$1]}"; else echo "${LAB_IP4[$1]}"; fi
}

# A marker string for payloads, unique per call, easy to find in a capture.
lab_marker() {
	echo "MCLAB-MARK-$1-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')"
}

# --- agents ----------------------------------------------------------------------------------

# lab_in_node NODE CMD...: runs CMD in the node's network namespace and in the mount namespace
# that holds its bpffs (the one its agents run in).
lab_in_node() {
	local node=$1 pid
	shift
	read -r pid _ <"$LAB_DIR/nodes/$node/bpffs.pid"
	nsenter -t "$pid" -m -n -- "$@"
}

# lab_agent_pid NODE: the pid of the node's meshcryptd.
lab_agent_pid() {
	local pid
	read -r pid _ <"$LAB_DIR/nodes/$1/meshcryptd.pid" && echo "$pid"
}

# lab_bpf_counter NODE NAME: a BPF counter of the node's agent (marked, strict_drop,
# leak_dropped, ...), as meshcryptctl status shows it.
lab_bpf_counter() {
	{ "$MESHCRYPTCTL" --run-dir "$LAB_DIR/nodes/$1/run" status || [ $? = 3 ]; } |
		awk -v n="$2_total" '$1 == "bpf:" && $2 == n { print $3 }'
}

# lab_wait_until SECONDS CMD...: polls CMD every 50 ms until it succeeds or time runs out.
lab_wait_until() {
	local end=$(($(date +%s%N) + $1 * 1000000000))
	shift
	until "$@"; do
		(($(date +%s%N) < end)) || return 1
		sleep 0.05
	done
}

# lab_edit_cluster JQ-FILTER: rewrites the static source's cluster file by rename (the source
# reloads it); with the k8s source, the changed objects also go to the test API server.
lab_edit_cluster() {
	jq "$1" "$LAB_CLUSTER_FILE" >"$LAB_CLUSTER_FILE.new"
	if [[ $LAB_SOURCE == k8s ]]; then
		ip netns exec "$LAB_HUB" python3 "$LAB_LIB_DIR/../../fakeapi/apply-diff.py" \
			"$LAB_CLUSTER_FILE" "$LAB_CLUSTER_FILE.new" | sed 's/^/# api: /'
	fi
	mv "$LAB_CLUSTER_FILE.new" "$LAB_CLUSTER_FILE"
}

# --- the Kubernetes source ---------------------------------------------------------------------

LAB_SOURCE=static # or k8s, after lab_k8s_source
LAB_API=192.168.100.254
LAB_API_PID=

# lab_k8s_source [--key-secret]: the agents learn the cluster from the test API server
# (tests/fakeapi/server.py, TLS with a test CA, a bearer token) in the hub at $LAB_API instead of
# the cluster file. It serves the file's objects but no MeshcryptNode: each agent publishes its
# own once its inbound side is installed. With --key-secret the IPsec keys come from the key
# Secret (lab_key_secret), not from the key file. From then on lab_edit_cluster also brings
# each change to the server. Call it after lab_up and before the agents start.
lab_k8s_source() {
	local src node conf extra='.'
	src=$(cd "$LAB_LIB_DIR/../../.." && pwd)
	[[ ${1:-} == --key-secret ]] && extra=".items += [$(lab_key_secret)]"
	ip -n "$LAB_HUB" addr add "$LAB_API/24" dev "$LAB_BRIDGE"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=lab-ca \
		-keyout "$LAB_DIR/ca.key" -out "$LAB_DIR/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$LAB_API" \
		-keyout "$LAB_DIR/api.key" -out "$LAB_DIR/api.csr" 2>/dev/null
	printf 'subjectAltName=IP:%s\n' "$LAB_API" >"$LAB_DIR/san"
	openssl x509 -req -in "$LAB_DIR/api.csr" -CA "$LAB_DIR/ca.pem" -CAkey "$LAB_DIR/ca.key" \
		-CAcreateserial -days 1 -extfile "$LAB_DIR/san" -out "$LAB_DIR/api.pem" 2>/dev/null
	(umask 077 && echo lab-token >"$LAB_DIR/token")
	jq '.items |= map(select(.kind != "MeshcryptNode"))' "$LAB_CLUSTER_FILE" | jq "$extra" \
		>"$LAB_DIR/fixture.json"
	ip netns exec "$LAB_HUB" python3 "$src/tests/fakeapi/server.py" --address "$LAB_API" \
		--port 6443 --control 6444 --cert "$LAB_DIR/api.pem" --key "$LAB_DIR/api.key" \
		--token-file "$LAB_DIR/token" "$LAB_DIR/fixture.json" >"$LAB_DIR/api.log" 2>&1 &
	LAB_API_PID=$!
	lab_wait_until 10 grep -q ready "$LAB_DIR/api.log" || {
		lab_fail "the test API server did not start: $(cat "$LAB_DIR/api.log")"
		lab_finish
	}
	cat >"$LAB_DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: $LAB_DIR/ca.pem
    server: https://$LAB_API:6443
  name: lab
contexts:
- context:
    cluster: lab
    user: agent
  name: lab
current-context: lab
users:
- name: agent
  user:
    tokenFile: $LAB_DIR/token
KUBECONFIG
	for node in "${LAB_NODES[@]}"; do
		conf=$LAB_DIR/nodes/$node/meshcryptd.conf
		sed -i -e 's/^plugin = static$/plugin = k8s/' -e '/^\[plugin.static\]$/d' -e '/^file = /d' "$conf"
		[[ $extra == . ]] || sed -i '/^key_file = /d' "$conf"
		printf '[plugin.k8s]\nkubeconfig = %s\nwatch_timeout = 30s\n' "$LAB_DIR/kubeconfig" >>"$conf"
	done
	LAB_SOURCE=k8s
}

# lab_api PATH [JSON]: a GET (or, with JSON, a POST) on the test API server's control port.
lab_api() {
	ip netns exec "$LAB_HUB" curl -sf "http://127.0.0.1:6444/$1" ${2:+-X POST -d "$2"}
}

# lab_key_secret: the key Secret (meshcrypt-system/meshcrypt-ipsec-keys) with the key file's lines.
lab_key_secret() {
	jq -n --arg keys "$(base64 -w0 "$LAB_KEY_FILE")" '{apiVersion: "v1", kind: "Secret",
		metadata: {namespace: "meshcrypt-system", name: "meshcrypt-ipsec-keys"}, data: {keys: $keys}}'
}

# lab_published GEN: every node's MeshcryptNode on the test API server advertises generation GEN.
lab_published() {
	local node
	for node in "${LAB_NODES[@]}"; do
		[[ $(lab_api "object/MeshcryptNode/$node" | jq -r '.spec.keyGeneration // 0') == "$1" ]] || return 1
	done
}

# lab_boot_id NODE: the boot ID the node's peers know it by (its MeshcryptNode's).
lab_boot_id() {
	if [[ $LAB_SOURCE == k8s ]]; then
		lab_api "object/MeshcryptNode/$1" | jq -r '.spec.bootID'
	else
		jq -r --arg n "$1" '.items[] | select(.kind == "MeshcryptNode" and .metadata.name == $n) |
			.spec.bootID' "$LAB_CLUSTER_FILE"
	fi
}

# --- traffic ----------------------------------------------------------------------------------

# lab_ping FROM TO 4|6: one echo request from pod FROM to pod (or node) TO; the payload is the
# byte 0xa5 repeated, which a capture shows in plaintext but never inside ESP.
lab_ping() {
	lab_exec "$1" busybox ping "-$3" -c 1 -W "${LAB_PING_WAIT:-2}" -p a5 "$(lab_ip "$2" "$3")" >/dev/null 2>&1
}

# lab_tcp FROM TO 4|6 MARKER: a TCP connection from pod FROM to an echo server in pod TO; the
# marker goes both ways (request and echoed reply). Succeeds when the echo comes back intact.
lab_tcp() {
	local from=$1 to=$2 family=$3 marker=$4 port server rc=0
	port=$LAB_TCP_PORT
	LAB_TCP_PORT=$((LAB_TCP_PORT + 1))
	# Not through lab_exec: $! must be the server itself (ip execs nc), not a subshell.
	ip netns exec "${LAB_NS[$to]}" busybox nc -l -p "$port" -e cat >/dev/null 2>&1 &
	server=$!
	# The client retries while the server is not listening yet (refused at once); a path that
	# drops packets makes it hang until the timeout instead.
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout "${LAB_TCP_WAIT:-5}" ip netns exec "${LAB_NS[$from]}" bash -c '
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			exec 3<>"/dev/tcp/$1/$2" && break
			sleep 0.2
		done 2>/dev/null
		printf "%s\n" "$3" >&3 && read -r -t 3 reply <&3 && [[ $reply == "$3" ]]' \
		lab-tcp "$(lab_ip "$to" "$family")" "$port" "$marker" || rc=1
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	return "$rc"
}

# lab_ping_flood FROM TO SECONDS OUT: IPv4 echo requests every 20 ms for SECONDS, the summary
# into OUT; lab_ping_lost OUT: how many got no reply.
lab_ping_flood() {
	lab_exec "$1" busybox ping -4 -q -i 0.02 -c $(($3 * 50)) "$(lab_ip "$2" 4)" >"$4" 2>&1 || true
}
lab_ping_lost() { awk '/packets transmitted/ { print $1 - $4 }' "$1"; }

# lab_assert_reach A B MARKER: ICMP and TCP (carrying MARKER), A -> B and B -> A, IPv4 and IPv6.
lab_assert_reach() {
	local a=$1 b=$2 marker=$3 f
	for f in 4 6; do
		lab_check "ICMPv$f $a -> $b" lab_ping "$a" "$b" "$f"
		lab_check "ICMPv$f $b -> $a" lab_ping "$b" "$a" "$f"
		lab_check "TCPv$f $a -> $b" lab_tcp "$a" "$b" "$f" "$marker"
		lab_check "TCPv$f $b -> $a" lab_tcp "$b" "$a" "$f" "$marker"
	done
}

# lab_assert_no_reach FROM TO 4|6 MARKER: neither ICMP nor TCP from FROM to TO gets through.
lab_assert_no_reach() {
	local from=$1 to=$2 f=$3 marker=$4
	# Shorter waits than for traffic that must pass: here every attempt runs into its timeout.
	local LAB_PING_WAIT=1 LAB_TCP_WAIT=3
	lab_check "ICMPv$f $from -> $to is dropped" lab_not lab_ping "$from" "$to" "$f"
	lab_check "TCPv$f $from -> $to is dropped" lab_not lab_tcp "$from" "$to" "$f" "$marker"
}

# --- captures ---------------------------------------------------------------------------------

# lab_capture_start NAME [NODE]: captures on the bridge (everything on the wire), or on NODE's
# bridge port (the wire of that node only). Not on the node's own uplink: there a capture also
# shows decrypted tunnel-mode packets re-injected on that device, which never were on the wire.
lab_capture_start() {
	local name=$1 dev=$LAB_BRIDGE file log i
	[[ -n ${2:-} ]] && dev=${LAB_PORT[$2]}
	file=$LAB_DIR/capture-$name.pcap log=$LAB_DIR/capture-$name.log
	ip netns exec "$LAB_HUB" tcpdump --immediate-mode -U -n -i "$dev" -w "$file" 2>"$log" &
	LAB_CAPTURE_PID[$name]=$!
	LAB_CAPTURE_FILE[$name]=$file
	for ((i = 0; i < 100; i++)); do
		grep -q 'listening on' "$log" 2>/dev/null && return 0
		kill -0 "${LAB_CAPTURE_PID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	lab_fail "capture $name did not start: $(cat "$log")"
	return 1
}

lab_capture_stop() {
	local name=$1 pid=${LAB_CAPTURE_PID[$1]}
	# Give tcpdump time to write what it has received (it is slow to be scheduled under TCG).
	sleep "${LAB_CAPTURE_SETTLE:-1}"
	kill -INT "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	unset "LAB_CAPTURE_PID[$name]"
}

lab_pcap() { echo "${LAB_CAPTURE_FILE[$1]}"; }

# lab_pcap_count PCAP FILTER: the number of packets matching a tcpdump filter.
lab_pcap_count() {
	tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l
}

# Filter expression: any packet whose own (outer) addresses are pods A and B, both families.
lab_filter_between_pods() {
	echo "(host $(lab_ip "$1" 4) and host $(lab_ip "$2" 4)) or (host $(lab_ip "$1" 6) and host $(lab_ip "$2" 6))"
}

# Filter expression: any packet between the nodes that host pods A and B, both families.
lab_filter_between_nodes() {
	local na=${LAB_NODE_OF[$1]} nb=${LAB_NODE_OF[$2]}
	echo "((host ${LAB_IP4[$na]} and host ${LAB_IP4[$nb]}) or (host ${LAB_IP6[$na]} and host ${LAB_IP6[$nb]}))"
}

# lab_only_esp PCAP A B: succeeds when traffic between pods A and B crossed the wire only as ESP
# between their nodes: no packet carries the pods' addresses, and ESP between the nodes was seen.
# Leaves the packet counts in LAB_COUNTS.
lab_only_esp() {
	lab_only_tunnel "$1" "$2" "$3" "(ip proto 50 or ip6 proto 50)" ESP
}

# lab_only_wireguard PCAP A B [PORT]: the same for WireGuard's UDP (default port 51830). Assert
# with lab_check "..." lab_only_wireguard PCAP A B.
lab_only_wireguard() {
	lab_only_tunnel "$1" "$2" "$3" "udp port ${4:-51830}" WireGuard
}

lab_only_tunnel() {
	local pcap=$1 a=$2 b=$3 filter=$4 name=$5 plain tunnel
	plain=$(lab_pcap_count "$pcap" "$(lab_filter_between_pods "$a" "$b")")
	tunnel=$(lab_pcap_count "$pcap" "$filter and $(lab_filter_between_nodes "$a" "$b")")
	LAB_COUNTS="plaintext $plain, $name $tunnel"
	((plain == 0 && tunnel > 0))
}

# lab_assert_only_esp PCAP A B: records lab_only_esp as an assertion, with the counts.
lab_assert_only_esp() {
	local rc=0
	lab_only_esp "$@" || rc=$?
	lab_record "$2 <-> $3 only as ESP on the wire ($LAB_COUNTS)" "$rc"
}

# lab_assert_plaintext PCAP A B: traffic between pods A and B crossed the wire in the clear.
lab_assert_plaintext() {
	local n
	n=$(lab_pcap_count "$1" "$(lab_filter_between_pods "$2" "$3")")
	lab_check "$2 <-> $3 in plaintext on the wire ($n packets)" test "$n" -gt 0
}

# lab_assert_marker_seen PCAP MARKER / lab_assert_marker_absent PCAP MARKER: whether the payload
# marker appears in plaintext anywhere in the capture.
lab_assert_marker_seen() {
	lab_check "marker $2 seen in plaintext" grep -qaF -- "$2" "$1"
}

lab_assert_marker_absent() {
	lab_check "marker $2 not seen in plaintext" lab_not grep -qaF -- "$2" "$1"
}

# --- xfrm -------------------------------------------------------------------------------------

# lab_xfrm_stat NODE [COUNTER]: /proc/net/xfrm_stat of the node (one counter, or all).
lab_xfrm_stat() {
	if [[ -n ${2:-} ]]; then
		# shellcheck disable=SC2016 # awk's own variables
		lab_exec "$1" awk -v k="$2" '$1 == k { print $2 }' /proc/net/xfrm_stat
	else
		lab_exec "$1" cat /proc/net/xfrm_stat
	fi
}

# lab_xfrm_snapshot NODE: remembers the node's counters for the assertions below.
lab_xfrm_snapshot() {
	lab_xfrm_stat "$1" >"$LAB_DIR/xfrm_stat-$1"
}

# lab_assert_xfrm_unchanged NODE [COUNTER...]: the counters (default: all) are as at the snapshot.
lab_assert_xfrm_unchanged() {
	local node=$1 changed
	shift
	changed=$(lab_xfrm_stat "$node" | awk -v want=" $* " '
		NR == FNR { before[$1] = $2; next }
		(want == "  " || index(want, " " $1 " ")) && before[$1] != $2 { printf " %s %s->%s", $1, before[$1], $2 }
	' "$LAB_DIR/xfrm_stat-$node" -)
	lab_check "$node: xfrm counters ${*:-(all)} unchanged${changed:+ (changed:$changed)}" test -z "$changed"
}

# lab_assert_xfrm_increased NODE COUNTER: the counter grew since the snapshot.
lab_assert_xfrm_increased() {
	local node=$1 counter=$2 before after
	before=$(awk -v k="$counter" '$1 == k { print $2 }' "$LAB_DIR/xfrm_stat-$node")
	after=$(lab_xfrm_stat "$node" "$counter")
	lab_check "$node: $counter increased ($before -> $after)" test "${after:-0}" -gt "${before:-0}"
}

# lab_xfrm_add_times NODE: each state with its add time: a state deleted and re-created gets a
# new one.
lab_xfrm_add_times() {
	lab_exec "$1" ip -s xfrm state list | awk '/^src/ { s = $0 } /add [0-9]/ { print s, $0 }' | sort
}

# lab_add_foreign_xfrm NODE: a state and an out policy that belong to someone else (reqid 7,
# documentation addresses), which meshcrypt must never touch; lab_foreign_untouched NODE then
# checks they are exactly as they were added: the same text with -s, whose add time tells a
# re-created object from the original.
declare -A LAB_FOREIGN=()
lab_foreign_xfrm() {
	ip -s -n "${LAB_NS[$1]}" xfrm state list reqid 7
	ip -s -n "${LAB_NS[$1]}" xfrm policy list dst 203.0.113.0/24
}
lab_add_foreign_xfrm() {
	lab_exec "$1" ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x4242 reqid 7 \
		mode tunnel aead 'rfc4106(gcm(aes))' "0x$(printf 'ab%.0s' $(seq 36))" 128
	lab_exec "$1" ip xfrm policy add src 198.51.100.0/24 dst 203.0.113.0/24 dir out \
		tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 7 mode tunnel
	LAB_FOREIGN[$1]=$(lab_foreign_xfrm "$1")
}
lab_foreign_untouched() { [[ -n ${LAB_FOREIGN[$1]:-} && $(lab_foreign_xfrm "$1") == "${LAB_FOREIGN[$1]}" ]]; }

# lab_xfrm_list NODE: the node's SAs and policies, as iproute2 shows them (for logs and greps).
lab_xfrm_list() {
	echo "== $1: xfrm states"
	ip -n "${LAB_NS[$1]}" xfrm state
	echo "== $1: xfrm policies"
	ip -n "${LAB_NS[$1]}" xfrm policy
}

# lab_xfrm_count NODE state|policy: how many SAs or policies the node has.
lab_xfrm_count() {
	ip -n "${LAB_NS[$1]}" xfrm "$2" list | grep -c '^src' || true
}
