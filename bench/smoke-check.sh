#!/usr/bin/env bash
# CI's short run of bench/run (--smoke), so that no benchmark rots: every figure must come out
# as `name value unit`, and the figures that are properties rather than speeds must hold:
# a restart with nothing changed writes nothing over netlink, a resync sends nothing, and a pod
# event is one bpf() call.
# Usage: bench/smoke-check.sh BUILD_DIR
set -euo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
"$(dirname "$0")/run" --smoke "$1" >"$out" || rc=$?
cat "$out"
[[ $rc == 77 ]] && exit 77
[[ $rc == 0 ]] || { echo "bench/run --smoke failed ($rc)"; exit 1; }
fail() { echo "smoke-check: $*"; exit 1; }
bad=$(grep -vE '^[a-z0-9_]+ -?[0-9.]+ [a-zA-Z/]+$' "$out" || true)
[[ -z $bad ]] || fail "lines that are not 'name value unit': $bad"
for figure in workqueue_a_items_per_sec store_200_nodes_bytes_per_pod pod_events_1000_pods_p99_ms \
	pod_events_syscalls_per_event xfrm_policies_ip_batch_over_meshcrypt_300_peers \
	xfrm_userspace_resync_cpu_seconds_300_peers agent_dryrun_100_nodes_resync_cpu_seconds; do
	grep -q "^$figure " "$out" || fail "$figure missing"
done
value() { awk -v n="$1" '$1 == n { print $2 }' "$out"; }
[[ $(value agent_dryrun_100_nodes_restart_netlink_writes) == 0 ]] || fail "a restart wrote over netlink"
[[ $(value xfrm_userspace_resync_messages_300_peers) == 0 ]] || fail "a resync sent messages"
[[ $(value xfrm_policies_resync_messages_300_peers) == 0 ]] || fail "a resync sent messages"
[[ $(value pod_events_1000_pods_bpf_calls_per_event) == 1.000 ]] || fail "a pod event is not one bpf() call"
echo "smoke-check: every figure printed, restart 0 netlink writes, resync 0 messages, 1 bpf() call a pod event"
