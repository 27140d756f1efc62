#!/usr/bin/env bash
# The k8s source against the test API server (tests/fakeapi/server.py) over TLS with a test CA:
# initial sync (paginated lists), add/modify/delete of pods reach the plan, 410 Gone as an HTTP
# status and in the stream -> relist (a pod deleted in the gap is deleted), a rotated token is
# picked up after a 401, a malformed event line is rejected and the watch resumes with nothing
# lost, a 10 MB event is rejected with a clear error.
# Usage: k8s-source.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }

# A test CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=test-ca \
	-keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$tmp/san"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-days 1 -extfile "$tmp/san" -out "$tmp/server.pem" 2>/dev/null
echo token-1 >"$tmp/token"
chmod 600 "$tmp/token"

big_cluster 1200 >"$tmp/cluster.json" # more than two pages of 500
port=$((20000 + RANDOM % 20000)) control=$((port + 1))
start_api() {
	python3 "$src/tests/fakeapi/server.py" --port "$port" --control "$control" --cert "$tmp/server.pem" \
		--key "$tmp/server.key" --token-file "$tmp/token" --state "$tmp/api.state" \
		"$tmp/cluster.json" >"$tmp/api.log" 2>&1 &
	api=$!
	until_ok grep -q ready "$tmp/api.log" || fail "the API server did not start: $(cat "$tmp/api.log")"
}
start_api
trap 'kill -KILL $api 2>/dev/null || true; wait $api 2>/dev/null || true; cleanup' EXIT

post() { curl -sf -X POST "http://127.0.0.1:$control/$1" -d "$2" >/dev/null; }
pod() { # NAME IP [LABEL]: a pod on node-2 in namespace enc
	printf '{"object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"namespace": "enc", "name": "%s"%s}, "spec": {"nodeName": "node-2"}, "status": {"phase": "Running", "podIP": "%s", "podIPs": [{"ip": "%s"}]}}}' \
		"$1" "${3:+, \"labels\": {\"meshcrypt.io/encryption\": \"$3\"\}}" "$2" "$2"
}

metrics_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/meshcryptd.conf" <<CONF
[core]
node_name = node-1
state_dir = state
run_dir = run
metrics_listen = 127.0.0.1:$metrics_port
[source]
plugin = k8s
[backend]
plugin = dryrun
[plugin.k8s]
kubeconfig = $tmp/kubeconfig
watch_timeout = 5s
CONF
# As kubectl writes it: the CA inline, the token from a file (rotated below).
cat >"$tmp/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 "$tmp/ca.pem")
    server: https://127.0.0.1:$port
  name: test
contexts:
- context:
    cluster: test
    user: agent
  name: test
current-context: test
users:
- name: agent
  user:
    tokenFile: token
KC
start_daemon
ready() { status | grep -q '^ready: yes'; }
until_ok ready || fail "not ready: $(status)"
plan() { ctl plan; }
plan_has() { plan | grep -q -- "$1"; }
plan_lacks() { ! plan | grep -q -- "$1"; }
until_ok plan_has "10.2.1.44" || fail "the initial sync lacks a pod of the third page"
echo "initial sync: $(status | grep '^status:')"
metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics")
for kind in Node Namespace Pod MeshcryptNode Secret; do
	grep -qx "meshcrypt_k8s_informer_synced{kind=\"$kind\"} 1" <<<"$metrics" &&
		grep -qx "meshcrypt_k8s_lists_total{kind=\"$kind\"} 1" <<<"$metrics" ||
		fail "informer metrics of $kind: $(grep meshcrypt_k8s <<<"$metrics")"
done
echo "informer metrics: all five synced, listed once"
grep -q "pods: listed 1200" "$tmp/log" || fail "pods not listed in full: $(grep pods: "$tmp/log")"

# publication: once the backend reports its inbound side (dryrun: generation 1), node-1's
# MeshcryptNode carries the Node's addresses and pod CIDRs and this kernel's boot ID
mcn() { curl -sf "http://127.0.0.1:$control/object/MeshcryptNode/node-1"; }
published() {
	mcn | python3 -c 'import json,sys; s = json.load(sys.stdin)["spec"]
sys.exit(0 if s["bootID"] == sys.argv[1] and s["addresses"] == ["192.168.100.1", "fd00:100::1"]
         and s.get("keyGeneration") == 1 and s["podCIDRs"] == ["10.1.0.0/16", "fd00:1:1::/64"] else 1)' \
		"$(cat /proc/sys/kernel/random/boot_id)"
}
until_ok published || fail "node-1's MeshcryptNode was not published: $(mcn)"
# the Node's addresses change, and the first update loses a race (409): published again
post mode '{"conflict": 1}'
post apply '{"object": {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.1.0.0/16", "podCIDRs": ["10.1.0.0/16", "fd00:1:1::/64"]}, "status": {"addresses": [{"type": "InternalIP", "address": "192.168.100.101"}], "nodeInfo": {"bootID": "0f6e1c52-5a1e-4c4b-9d3e-000000000001"}}}}'
republished() { mcn | grep -q '"addresses": \["192.168.100.101"\]'; }
until_ok republished || fail "a changed Node address was not published again: $(mcn)"
echo "publication: created from the Node and the backend's report, updated after a 409 conflict"

# modify and delete of the other kinds: a Namespace losing its label unmanages its pods; a
# MeshcryptNode deleted and recreated takes its peer out of the plan and back
post apply '{"object": {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "enc", "labels": {}}}}'
until_ok plan_lacks 10.2.1.44 || fail "a Namespace that lost its label still manages its pods"
post apply '{"object": {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "enc", "labels": {"meshcrypt.io/encryption": "enabled"}}}}'
until_ok plan_has 10.2.1.44 || fail "a Namespace that got its label back does not manage its pods"
node3=$(curl -sf "http://127.0.0.1:$control/object/MeshcryptNode/node-3")
post delete '{"kind": "MeshcryptNode", "name": "node-3"}'
until_ok plan_lacks "peer node-3" || fail "a deleted MeshcryptNode leaves its peer in the plan"
post apply "{\"object\": $node3}"
until_ok plan_has "peer node-3" || fail "a recreated MeshcryptNode does not bring its peer back"
echo "Namespace and MeshcryptNode changes: reach the plan"

# add, modify, delete
post apply "$(pod extra-1 10.2.200.1)"
until_ok plan_has 10.2.200.1 || fail "an added pod does not reach the plan"
post delete '{"kind": "Pod", "namespace": "enc", "name": "extra-1"}'
until_ok plan_lacks 10.2.200.1 || fail "a deleted pod stays in the plan"
pod_events=$(curl -sf "http://127.0.0.1:$metrics_port/metrics" |
	sed -n 's/^meshcrypt_k8s_watch_events_total{kind="Pod"} //p')
[ "${pod_events:-0}" -ge 2 ] || fail "meshcrypt_k8s_watch_events_total{kind=\"Pod\"} is ${pod_events:-absent}"
echo "add and delete: ok ($pod_events pod events counted)"

# 410 Gone, both forms: the history is forgotten, a pod is deleted in the gap -> relist
for form in http stream; do
	post mode "{\"gone\": \"$form\"}"
	post apply "$(pod gap-$form 10.2.201.1)"
	until_ok plan_has 10.2.201.1 || fail "gap-$form not added"
	post compact "{\"delete\": {\"kind\": \"Pod\", \"namespace\": \"enc\", \"name\": \"gap-$form\"}}"
	until_ok plan_lacks 10.2.201.1 || fail "410 as $form: the pod deleted in the gap stays"
	echo "410 as $form: relisted, the pod deleted in the gap is gone"
done
grep -q "is gone (410): listing again" "$tmp/log" || fail "no relist logged"

# token rotation: the server wants the new token at once; the source re-reads it on 401
echo token-2 >"$tmp/token"
post mode '{"cut": true}'
post apply "$(pod after-rotation 10.2.202.1)"
for _ in $(seq 10); do until_ok plan_has 10.2.202.1 && break; done
plan_has 10.2.202.1 || fail "after the token rotation no event arrives"
grep -q "unauthorized (401): re-reading the token" "$tmp/log" || fail "no 401 seen"
echo "token rotation: picked up after a 401"

# a malformed line: rejected and logged, the watch resumes, the event after it arrives
post mode '{"malformed": true}'
post apply "$(pod after-malformed 10.2.203.1)"
until_ok plan_has 10.2.203.1 || fail "the event after a malformed line is lost"
grep -q "a malformed watch event: rejected" "$tmp/log" || fail "the malformed line was not logged"
echo "malformed line: rejected, nothing lost"

# a huge event: rejected with a clear error, the next event arrives
post mode '{"huge": 10485760}'
post apply "$(pod after-huge 10.2.204.1)"
until_ok plan_has 10.2.204.1 || fail "the event after a huge one is lost"
grep -q "a watch event of more than" "$tmp/log" || fail "the huge event was not reported"
echo "10 MB event: rejected"

# hostile objects: a label value of a megabyte, an IPv4-mapped pod IP. Each watch event is
# rejected alone; a relist that serves them leaves them out with one line, the rest stays.
python3 - "$tmp/big-label.json" <<'PY'
import json, sys
pod = {"kind": "Pod", "apiVersion": "v1",
       "metadata": {"namespace": "enc", "name": "big-label", "labels": {"x": "v" * (1 << 20)}},
       "spec": {"nodeName": "node-2"},
       "status": {"phase": "Running", "podIP": "10.2.205.1", "podIPs": [{"ip": "10.2.205.1"}]}}
json.dump({"object": pod}, open(sys.argv[1], "w"))
PY
curl -sf -X POST "http://127.0.0.1:$control/apply" --data-binary @"$tmp/big-label.json" >/dev/null
post apply "$(pod mapped ::ffff:10.2.205.2)"
post apply "$(pod after-hostile 10.2.205.3)"
until_ok plan_has 10.2.205.3 || fail "the event after the hostile ones is lost"
grep -q 'is longer than 63 characters' "$tmp/log" || fail "the megabyte label was not reported"
grep -q 'is an IPv4-mapped IPv6 address' "$tmp/log" || fail "the mapped address was not reported"
post mode '{"gone": "http"}'
post apply "$(pod after-hostile-relist 10.2.205.4)"
until_ok plan_has 10.2.205.4 || fail "after-hostile-relist not added"
post compact '{"delete": {"kind": "Pod", "namespace": "enc", "name": "after-hostile-relist"}}'
until_ok plan_lacks 10.2.205.4 || fail "no relist after the hostile pods"
until_ok grep -q "pods: 2 object(s) of the list left out as malformed" "$tmp/log" ||
	fail "the relist did not leave out the hostile pods: $(grep -i malformed "$tmp/log" | tail -n 3)"
plan_has 10.2.205.3 || fail "the relist with hostile pods lost the others"
plan_lacks 10.2.205.1 && plan_lacks 10.2.205.2 || fail "a hostile pod reached the plan"
echo "hostile pods (1 MB label, mapped IP): rejected alone, left out of a relist, the rest kept"

# the API server restarts mid-watch: the watches resume from their resourceVersion, no relist
lists_before=$(grep -c ": listed " "$tmp/log")
kill -TERM "$api"
wait "$api" 2>/dev/null || true
sleep 1
start_api
post apply "$(pod after-restart 10.2.206.1)"
for _ in 1 2 3 4 5 6; do until_ok plan_has 10.2.206.1 && break; done
plan_has 10.2.206.1 || fail "after an API server restart no event arrives"
[ "$(grep -c ": listed " "$tmp/log")" = "$lists_before" ] || fail "an API server restart made the source relist"
echo "API server restart: watches resumed without a relist"

# a restart of the daemon while the MeshcryptNodes come 3 s after the rest: nothing is applied
# from the partial view (there the local node has its Node's boot ID, not the one it published),
# so a restart with nothing changed changes nothing
post mode '{"slow_kinds": {"MeshcryptNode": 3}}'
stop_daemon
start_daemon
until_ok ready || fail "not ready after a restart with slow MeshcryptNodes"
sleep 0.5
! grep -E "dryrun: (local|peer [^:]*|pod [^:]*): " "$tmp/log" ||
	fail "a restart with nothing changed applied a change (from the partial view)"
post mode '{"slow_kinds": {}}'
echo "restart with MeshcryptNodes listed late: nothing applied from the partial view"

# a slow API server (every request stalls 3 s) blocks nothing: the daemon answers at once
post mode '{"slow": 3, "cut": true}'
t0=$(date +%s%N)
status >/dev/null || fail "status fails while the API server is slow"
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt 1000 ] || fail "status took $(((t1 - t0) / 1000000)) ms while the API server is slow"
kill -HUP "$pid"
sleep 1
t0=$(date +%s%N)
status | grep -q "^ready: no" || fail "during a reload on a slow API server the source claims to be ready"
t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt 1000 ] || fail "status took $(((t1 - t0) / 1000000)) ms during the reload"
post mode '{"slow": 0}'
for _ in 1 2 3 4; do until_ok ready && break; done
ready || fail "not ready again once the API server is fast"
echo "slow API server: the daemon answered at once, reloaded, and synced once the server was fast"

# the test API server speaks the real protocol: Debian's kubectl reads and watches it
if command -v kubectl >/dev/null; then
	kubectl --kubeconfig "$tmp/kubeconfig" get nodes -o name >"$tmp/kubectl-nodes" 2>&1 ||
		fail "kubectl get nodes: $(cat "$tmp/kubectl-nodes")"
	grep -qx "node/node-2" "$tmp/kubectl-nodes" || fail "kubectl get nodes: $(cat "$tmp/kubectl-nodes")"
	timeout 5 kubectl --kubeconfig "$tmp/kubeconfig" get pods -A -w >"$tmp/kubectl-watch" 2>&1 &
	sleep 2
	post apply "$(pod seen-by-kubectl 10.2.205.1)"
	sleep 2
	grep -q "seen-by-kubectl" "$tmp/kubectl-watch" || fail "kubectl get pods -A -w: $(tail -3 "$tmp/kubectl-watch")"
	echo "kubectl: get nodes and get pods -A -w work against the test server"
else
	echo "kubectl not installed: the kubectl check is skipped"
fi

# HTTP requests that fail (fault injection, MC_FAULTS; a test build has it): every 4th request
# is refused, 5 in all; the lists and watches are retried with backoff and the plan comes out as
# before, nothing lost
if [ "${MC_FAULT_INJECTION:-0}" = 1 ]; then
	plan >"$tmp/plan-before"
	stop_daemon
	MC_FAULTS=http=ECONNREFUSED:4:5 start_daemon
	# the backoff doubles from 0.8 s: allow a minute
	for _ in $(seq 12); do until_ok ready && break; done
	ready || fail "with HTTP faults the source never became ready"
	post apply "$(pod after-faults 10.2.207.1)"
	until_ok plan_has 10.2.207.1 || fail "with HTTP faults a watch event was lost"
	plan | grep -v 10.2.207.1 >"$tmp/plan-after"
	diff "$tmp/plan-before" "$tmp/plan-after" >/dev/null || fail "the plan after HTTP faults differs: $(diff "$tmp/plan-before" "$tmp/plan-after" | head | tr "\n" " ")"
	grep -q "failed (Connection refused); again in about" "$tmp/log" ||
		fail "no injected HTTP failure was retried: $(grep -i "again in" "$tmp/log" | tail -n 3)"
	echo "HTTP faults: every refused request retried with backoff, the plan as before, no event lost"
fi

stop_daemon
echo "k8s source: all checks passed"
