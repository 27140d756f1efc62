#!/usr/bin/env bash
# meshcryptd itself on a large cluster (bench/run; issue 15): the agent as it runs on a node,
# with the static source on store_bench's cluster (NODES nodes, each with a MeshcryptNode, 30
# pods a node: 150,000 pods at 5,000 nodes), the tc attach plugin and BACKEND (xfrm, which needs
# ESP: the lab VM; or dryrun). Prints, one line each (`name value unit`):
#
#   agent_BACKEND_NODES_nodes_converge_seconds   start -> ready, queue empty, every peer applied
#   agent_BACKEND_NODES_nodes_rss_mb             meshcryptd's VmRSS then (steady state)
#   agent_BACKEND_NODES_nodes_peak_rss_mb        meshcryptd's VmHWM then (the static source
#                                                holds the whole cluster file while it parses)
#   agent_BACKEND_NODES_nodes_resync_cpu_seconds meshcryptd's CPU time for one full periodic
#                                                resync (every key again, then gc), nothing
#                                                changed; only with "resync" as 4th argument
#   agent_BACKEND_NODES_nodes_restart_netlink_writes   netlink requests that change the kernel,
#   agent_BACKEND_NODES_nodes_restart_bpf_writes       and bpf() calls that do, made by a
#                                                restart with nothing changed (target 0), counted
#                                                by bench/nl-count.so; the writes by type go to
#                                                stderr when there are any
#
# Runs in a network and mount namespace of its own (a veth uplink, a private bpffs).
# Usage: bench/agent.sh BUILD_DIR BACKEND NODES [resync]     (as root)
set -euo pipefail
build=$(cd "$1" && pwd) backend=$2 nodes=$3 resync=${4:-}
src=$(cd "$(dirname "$0")/.." && pwd)
if [[ ${MC_AGENT_INNER:-} != 1 ]]; then
	((EUID == 0)) || { echo "SKIP: needs root" >&2; exit 77; }
	MC_AGENT_INNER=1 exec unshare --net --mount --propagation private "$0" "$@"
fi

tmp=$(mktemp -d /tmp/mc-agent-bench.XXXXXX)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	umount "$tmp/bpffs" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/bpffs" "$tmp/state" "$tmp/run"
mount -t bpf bpf "$tmp/bpffs"
ip link set lo up
ip link add mcb0 type veth peer name mcb1
ip link set mcb0 up
"$build/bench/store_bench" --fixture "$nodes" > "$tmp/cluster.json"
printf '1 rfc4106(gcm(aes)) %s 128\n' "$(od -An -tx1 -N36 /dev/urandom | tr -d ' \n')" > "$tmp/keys"
chmod 0600 "$tmp/keys"
cat > "$tmp/meshcryptd.conf" <<EOF
[core]
node_name = node-00000
plugin_dir = $build/plugins
state_dir = $tmp/state
run_dir = $tmp/run
workers = 2
resync_interval = 3600s
metrics_listen =
[source]
plugin = static
[backend]
plugin = $backend
[attach]
plugin = tc
bpffs_dir = $tmp/bpffs/meshcrypt
uplinks = mcb0
[plugin.static]
file = $tmp/cluster.json
EOF
if [[ $backend == xfrm ]]; then
	printf '[plugin.xfrm]\nkey_file = %s/keys\n' "$tmp" >> "$tmp/meshcryptd.conf"
fi

name=agent_${backend}_${nodes}_nodes
now() { date +%s.%N; }
status() { "$build/core/programs/meshcryptctl" --run-dir "$tmp/run" --json status 2>/dev/null; }
# converged: ready, nothing queued, and every participating peer applied
converged() {
	status | jq -e '.ready and .queue == 0 and (.peers | length) > 0 and
		all(.peers[]; .reconcile == "applied")' >/dev/null
}
wait_converged() {
	local end=$(($(date +%s) + $1))
	until converged; do
		(($(date +%s) < end)) || { echo "agent.sh: not converged after $1 s" >&2; tail -n 20 "$tmp/log" >&2; exit 1; }
		kill -0 "$pid" 2>/dev/null || { echo "agent.sh: meshcryptd died" >&2; tail -n 20 "$tmp/log" >&2; exit 1; }
		sleep 0.2
	done
}
# meshcryptd's CPU time (user + system) in seconds
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$pid/stat"; }
start() {
	env "$@" "$build/core/programs/meshcryptd" --config "$tmp/meshcryptd.conf" >>"$tmp/log" 2>&1 &
	pid=$!
}
stop() {
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}

t0=$(now)
start
wait_converged 600
t1=$(now)
converge=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "${name}_converge_seconds $converge s"
echo "${name}_rss_mb $(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status") MB"
echo "${name}_peak_rss_mb $(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status") MB"
stop

# a restart with nothing changed, counted
start LD_PRELOAD="$build/bench/nl-count.so" MC_NLCOUNT_FILE="$tmp/counts"
wait_converged 600
sleep 1
stop
read -r _ _ _ _ _ netlink_writes _ _ _ bpf_writes < <(head -n 1 "$tmp/counts")
echo "${name}_restart_netlink_writes $netlink_writes writes"
echo "${name}_restart_bpf_writes $bpf_writes writes"
if [[ $netlink_writes != 0 || $bpf_writes != 0 ]]; then
	sed -n '2,$p' "$tmp/counts" >&2
fi

[[ $resync == resync ]] || exit 0
# the CPU of one periodic resync, nothing changed: a run whose resync timer fires once the
# start has converged; from the first key it re-applies until the queue is empty again
interval=$(awk -v c="$converge" 'BEGIN { printf "%d", 2 * c + 10 }')
sed -i "s/^resync_interval = .*/resync_interval = ${interval}s/" "$tmp/meshcryptd.conf"
start
wait_converged 600
ok() { status | jq .reconciled.ok; }
c0=$(cpu) s0=$(ok)
until (($(ok) > s0)); do sleep 0.1; done
wait_converged 600
echo "${name}_resync_cpu_seconds $(awk -v a="$c0" -v b="$(cpu)" 'BEGIN { printf "%.2f", b - a }') s"
stop
