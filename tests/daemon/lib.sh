# shellcheck shell=bash
# Shared by the daemon tests: a private directory, a meshcryptd running in it, its control
# socket, and a teardown that kills the daemon even when a test fails.
# Source with BUILD_DIR SOURCE_DIR as the script's arguments.
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
tmp=$(mktemp -d /tmp/mc-daemon-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl() { "$build/core/programs/meshcryptctl" --run-dir "$tmp/run" "$@"; }
# status: meshcryptctl status, succeeding whenever the daemon answers (ready or not: exit 3)
status() { ctl status || [ $? = 3 ]; }

fail() {
	echo "FAIL: $*" >&2
	cat "$tmp/log" >&2
	exit 1
}

# start_daemon: runs meshcryptd on $tmp/meshcryptd.conf (run_dir must be "run"), log in $tmp/log,
# with the plugins of $plugin_dir (default: the build's).
start_daemon() {
	"$build/core/programs/meshcryptd" --config "$tmp/meshcryptd.conf" \
		--plugin-dir "${plugin_dir:-$build/plugins}" 2>"$tmp/log" &
	pid=$!
}

# stop_daemon: SIGTERM, which must end meshcryptd with status 0.
stop_daemon() {
	local rc=0

	kill -TERM "$pid"
	wait "$pid" || rc=$?
	pid=
	[ "$rc" = 0 ] || fail "meshcryptd exited $rc on SIGTERM"
}

# until_ok CMD...: retries CMD for up to 5 s.
until_ok() {
	for _ in $(seq 250); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.02
	done
	return 1
}

# static_config RUN_DIR [CORE_LINE...]: node-1 of the example cluster with the static source and
# the dryrun backend, extra [core] lines as given.
static_config() {
	local run=$1
	shift
	printf '[core]\nnode_name = node-1\nrun_dir = %s\nstate_dir = %s/state\n' "$run" "$(dirname "$run")"
	printf '%s\n' "$@"
	printf '[source]\nplugin = static\n[backend]\nplugin = dryrun\n'
	printf '[plugin.static]\nfile = %s\n' "$src/examples/cluster-3node.json"
}

# big_cluster PODS [NODES]: a static-source cluster of NODES nodes (default 4, at most 254:
# node-1 to node-N, pod CIDRs 10.N.0.0/16 and fd00:1:N::/64) with PODS managed pods spread over
# them, two addresses each, on stdout.
big_cluster() {
	python3 - "$1" "${2:-4}" <<'PY'
import json, sys
pods, nodes = int(sys.argv[1]), int(sys.argv[2])
items = [{"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "enc", "labels": {"meshcrypt.io/encryption": "enabled"}},
          "status": {"phase": "Active"}}]
for n in range(1, nodes + 1):
    name, boot = "node-%d" % n, "0f6e1c52-5a1e-4c4b-9d3e-%012d" % n
    cidrs = ["10.%d.0.0/16" % n, "fd00:1:%d::/64" % n]
    addrs = ["192.168.100.%d" % n, "fd00:100::%d" % n]
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                  "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
                  "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addrs],
                             "nodeInfo": {"bootID": boot}}})
    items.append({"apiVersion": "meshcrypt.io/v1alpha1", "kind": "MeshcryptNode",
                  "metadata": {"name": name},
                  "spec": {"addresses": addrs, "bootID": boot, "keyGeneration": 1,
                           "podCIDRs": cidrs}})
for i in range(pods):
    n, k = i % nodes + 1, i // nodes
    ip4, ip6 = "10.%d.%d.%d" % (n, k // 250, k % 250 + 1), "fd00:1:%d::%x" % (n, k + 1)
    items.append({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"namespace": "enc", "name": "pod-%d" % i},
                  "spec": {"nodeName": "node-%d" % n},
                  "status": {"phase": "Running", "podIP": ip4,
                             "podIPs": [{"ip": ip4}, {"ip": ip6}]}})
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
PY
}
