#!/usr/bin/env bash
# Hostile cluster input (issue 16), through meshcryptd with the static source and the dryrun
# backend: 100,000 peers (more than the 65,535 peer indices), a MeshcryptNode claiming another
# node's address and one claiming this node's, a pod claiming a node's address, peers that
# advertise generation 0 and 4294967295, an IPv4-mapped pod IP and a label value of a
# megabyte. Each is said in a clear log line, and no other peer is affected.
# (The xfrm backend's handling of the generations: tests/unit/test-xfrm.c; the k8s source
# leaving hostile objects out of a list: tests/daemon/k8s-source.sh.)
# Usage: hostile-input.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
peers=100000

# cluster.py OUT [EXTRA]: node-1 (this one) and $peers peers, a managed namespace, a pod on
# node-2; EXTRA adds the hostile pods of the second half of the test.
cat >"$tmp/cluster.py" <<'PY'
import json, sys
peers, out, extra = int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
items = [{"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "enc", "labels": {"meshcrypt.io/encryption": "enabled"}}}]
def addr(n):
    return "100.%d.%d.%d" % (64 + n // 65536, n // 256 % 256, n % 256)
for n in range(1, peers + 2):
    name = "node-%d" % n
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                  "spec": {"podCIDR": "10.%d.%d.0/24" % (n // 256, n % 256)} if n < 65536 else {},
                  "status": {"addresses": [{"type": "InternalIP", "address": addr(n)}],
                             "nodeInfo": {"bootID": "%08x-1111-4111-8111-111111111111" % n}}})
    spec = {"keyGeneration": 1, "addresses": [addr(n)]}
    if n == 3:
        spec["addresses"] = [addr(2), "192.168.7.3"]  # node-2's address, and its own
    if n == 5:
        spec["addresses"] = [addr(1)]                 # this node's address
    if n == 6:
        spec["keyGeneration"] = 0
    if n == 7:
        spec["keyGeneration"] = 4294967295
    items.append({"apiVersion": "meshcrypt.io/v1alpha1", "kind": "MeshcryptNode",
                  "metadata": {"name": name}, "spec": spec})
def pod(name, node, ip, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "enc", "name": name, "labels": labels or {}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
items.append(pod("web", "node-2", "10.0.2.5"))
items.append(pod("thief", "node-2", addr(4)))  # node-4's address
if extra == "mapped":
    items.append(pod("mapped", "node-2", "::ffff:10.0.2.6"))
if extra == "label":
    items.append(pod("label", "node-2", "10.0.2.7", {"x": "v" * (1 << 20)}))
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(out, "w"))
PY
python3 "$tmp/cluster.py" "$peers" "$tmp/cluster.json"
static_config "$tmp/run" "metrics_listen =" "resync_interval = 1h" |
	sed -e "s|^file = .*|file = $tmp/cluster.json|" > "$tmp/meshcryptd.conf"
start_daemon
until_ok status >/dev/null || fail "no answer"
for _ in $(seq 60); do
	grep -q "have no peer index" "$tmp/log" && break
	sleep 1
done

# 100,000 peers: one line says how many have no index; node-2 is applied as ever
grep -q "error: 34465 participating peer(s) have no peer index: all 65535 are taken" "$tmp/log" ||
	fail "no single line for the peers beyond the last index"
[ "$(grep -c "can never be applied" "$tmp/log")" = 0 ] || fail "a line per peer without an index"
grep -q "dryrun: peer node-2: index" "$tmp/log" || fail "node-2 was not applied"
echo "100,000 peers: one line for the 34,465 without an index, the others applied"

# addresses: node-3 does not get node-2's, node-5 not this node's; the pod at node-4's address
# is no pod
peer_line() { ctl plan | awk -v p="peer $1" '$0 == p { on = 1; next } /^peer / { on = 0 } on'; }
peer_line node-2 | grep -q "address 100.64.0.2" || fail "node-2 lost its address"
! peer_line node-3 | grep -q "address 100.64.0.2" || fail "node-3 holds node-2's address"
peer_line node-3 | grep -q "address 192.168.7.3" || fail "node-3 lost its own address"
! peer_line node-5 | grep -q "address 100.64.0.1" || fail "node-5 holds this node's address"
grep -q "address 100.64.0.2 is listed by nodes node-2 and node-3: it stays with node-2 (its Node lists it); node node-3 is not reached at it" "$tmp/log" ||
	fail "the stolen address was not reported"
grep -q "address 100.64.0.1 is listed by nodes node-1 and node-5: it stays with node-1 (this node)" "$tmp/log" ||
	fail "the claim on this node's address was not reported"
ctl plan | grep -q "remote-pod 100.64.0.4 " && fail "the pod at node-4's address is in the plan"
ctl plan | grep -q "remote-pod 10.0.2.5 enc/web peer node-2" || fail "the ordinary pod is not in the plan"
grep -q "pod IP 100.64.0.4 (enc/thief) is the address of node node-4" "$tmp/log" ||
	fail "the pod at a node's address was not reported"
echo "addresses: a stolen node address, this node's, a pod at a node's: each refused in a line"

# generations 0 and 4294967295 are what those peers advertise, nobody else's
ctl plan | awk '$1 == "peer" { p = $2 } $1 == "key-generation" { print p, $2 }' >"$tmp/gens"
grep -qx "node-6 0" "$tmp/gens" && grep -qx "node-7 4294967295" "$tmp/gens" &&
	grep -qx "node-2 1" "$tmp/gens" || fail "generations: $(head -n 8 "$tmp/gens")"
echo "generations 0 and 4294967295: carried for those peers only"

# an IPv4-mapped pod IP, a label of a megabyte: the operator's file is refused with the reason,
# the last good state stays
plan_before=$(ctl plan | md5sum)
for extra in mapped label; do
	python3 "$tmp/cluster.py" "$peers" "$tmp/cluster.new" "$extra"
	mv "$tmp/cluster.new" "$tmp/cluster.json"
	case $extra in
	mapped) want='"::ffff:10.0.2.6" is an IPv4-mapped IPv6 address' ;;
	label) want='metadata.labels.x: "vvvv.*is longer than 63 characters' ;;
	esac
	for _ in $(seq 60); do grep -q -- "$want" "$tmp/log" && break; sleep 0.5; done
	grep -q -- "$want" "$tmp/log" || fail "$extra: not reported"
	[ "$(ctl plan | md5sum)" = "$plan_before" ] || fail "$extra: the plan changed"
	echo "$extra: the file refused with its reason, the plan kept"
done
kill -0 "$pid" || fail "meshcryptd died"
stop_daemon
echo "hostile-input: all checks passed"
