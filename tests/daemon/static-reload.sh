#!/usr/bin/env bash
# The static source follows its file while meshcryptd runs: an edit written in place and one
# renamed over the file each change the dryrun plan within 1 s; a broken edit is rejected with
# a precise error and the previous plan stays; a daemon started on a broken file runs, reports
# not-ready and recovers when the file is fixed; SIGTERM stops the daemon cleanly.
# Usage: static-reload.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# 0. the first file is broken
echo '{"apiVersion": "v1", "kind": "List", "items": [' > "$tmp/cluster.json"
cat > "$tmp/meshcryptd.conf" <<CONF
[core]
node_name = node-1
state_dir = state
run_dir = run
[source]
plugin = static
[backend]
plugin = dryrun
[plugin.static]
file = cluster.json
CONF
start_daemon

# wait_plan PATTERN present|absent TIMEOUT_MS: polls the plan; prints the milliseconds taken.
wait_plan() {
	local pattern=$1 want=$2 limit=$3 start plan
	start=$(now_ms)
	while :; do
		plan=$(ctl plan 2>/dev/null || true)
		if grep -q -- "$pattern" <<< "$plan"; then
			[ "$want" = present ] && break
		else
			[ "$want" = absent ] && [ -n "$plan" ] && break
		fi
		if [ $(($(now_ms) - start)) -gt "$limit" ]; then
			fail "'$pattern' not $want after ${limit} ms; plan: $plan"
		fi
		sleep 0.02
	done
	echo $(($(now_ms) - start))
}

# edit FILTER-PYTHON: applies a change to the items list of a copy of the cluster file.
edited() {
	python3 - "$tmp/cluster.json" "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
items = doc["items"]
exec(sys.argv[2])
json.dump(doc, sys.stdout, indent=1)
PY
}

not_ready() { status 2>/dev/null | grep -q '^ready: no'; }
for _ in $(seq 250); do not_ready && break; sleep 0.02; done
not_ready || fail "a daemon on a broken file does not report not-ready"
status | grep -q '^status: .*cluster.json:[0-9]*:[0-9]*: JSON' || fail "status does not say why: $(status)"
rc=0
ctl status >/dev/null || rc=$?
[ "$rc" = 3 ] || fail "meshcryptctl status exits $rc while not ready, not 3"
echo "broken first file: running, $(status | grep '^status:'), meshcryptctl status exits 3"
cp "$src/examples/cluster-3node.json" "$tmp/next.json"
mv "$tmp/next.json" "$tmp/cluster.json"
wait_plan 'node-2' present 5000 >/dev/null
status | grep -q '^ready: yes' || fail "not ready after the file was fixed"
echo "fixed: ready, plan has peer node-2"

# 1. written in place: a new managed pod on node-2
edited 'items.append({"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"shop","name":"web-3","creationTimestamp":"2026-11-21T00:00:00Z"},"spec":{"nodeName":"node-2"},"status":{"phase":"Running","podIPs":[{"ip":"10.1.2.11"}]}})' > "$tmp/next.json"
cat "$tmp/next.json" > "$tmp/cluster.json"
ms=$(wait_plan '10\.1\.2\.11' present 1000)
echo "write in place: plan changed after ${ms} ms"

# 2. renamed over the file (what editors and kubectl > tmp && mv do): node-3 leaves
edited 'items[:] = [i for i in items if not (i["kind"] == "MeshcryptNode" and i["metadata"]["name"] == "node-3")]' > "$tmp/next.json"
mv "$tmp/next.json" "$tmp/cluster.json"
ms=$(wait_plan 'peer node-3' absent 1000)
echo "rename over: plan changed after ${ms} ms"

# 3. a broken edit: rejected, the previous plan stays
before=$(ctl plan)
head -c 300 "$tmp/cluster.json" > "$tmp/broken.json"
cat "$tmp/broken.json" > "$tmp/cluster.json"
sleep 1
after=$(ctl plan)
[ "$before" = "$after" ] || fail "a broken file changed the plan"
grep -q "cluster.json:[0-9]*:[0-9]*: .*keeping the last good state" "$tmp/log" ||
	fail "no precise error for the broken file"
echo "broken edit rejected: $(grep 'keeping the last good state' "$tmp/log" | tail -1)"
status | grep -q '^ready: yes' || fail "not ready after a broken edit"

# 4. repaired: the original file again
cp "$src/examples/cluster-3node.json" "$tmp/next.json"
mv "$tmp/next.json" "$tmp/cluster.json"
wait_plan 'peer node-3' present 1000 >/dev/null
echo "repaired file applied"

stop_daemon
echo "static-reload: all checks passed"
