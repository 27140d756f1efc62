#!/usr/bin/env bash
# Peer indices (DESIGN.md §4) are stable: the same per node across a restart, a SIGHUP reload
# and a cluster file whose items come in another order. And garbage collection: a peer removed
# from the cluster file while meshcryptd is stopped is removed by the backend (dryrun, whose
# "installed" objects outlive the process in its state file) after the next start, and its
# index is released.
# Usage: peer-indices.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
cluster=$tmp/cluster.json
cp "$src/examples/cluster-3node.json" "$cluster"
static_config "$tmp/run" > "$tmp/meshcryptd.conf"
sed -i "s|^file = .*|file = $cluster|" "$tmp/meshcryptd.conf"
state=$tmp/state

# index_of NODE: its index in the peer-index journal (the last "+" line wins).
index_of() { awk -v n="$1" '$1 == "+" && $3 == n { i = $2 } $1 == "-" && $3 == n { i = "" } END { print i }' "$state/peer-indices"; }
# installed_index NODE: the index the backend was given, from its state file.
installed_index() { sed -n "s/^peer $1\tindex \([0-9]*\),.*/\1/p" "$state/dryrun.state"; }
# reorder: the cluster file's items reversed (nodes last), same objects.
reorder() {
	python3 - "$cluster" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["items"].reverse()
json.dump(d, open(sys.argv[1], "w"), indent=1)
PY
}
wait_synced() { until_ok grep -q "$1" "$tmp/log" || fail "never saw: $1"; }

start_daemon
wait_synced 'peer node-3: index'
until_ok status || fail "daemon not answering"
stop_daemon
i2=$(index_of node-2) i3=$(index_of node-3)
[ -n "$i2" ] && [ -n "$i3" ] && [ "$i2" != "$i3" ] || fail "indices node-2=$i2 node-3=$i3"
[ "$(installed_index node-2)" = "$i2" ] && [ "$(installed_index node-3)" = "$i3" ] ||
	fail "backend got other indices: $(cat "$state/dryrun.state")"
echo "first start: node-2=$i2 node-3=$i3"

# restart with the items reversed
reorder
start_daemon
wait_synced 'loaded 22 objects'
until_ok status || fail "daemon not answering after restart"
[ "$(index_of node-2)" = "$i2" ] && [ "$(index_of node-3)" = "$i3" ] || fail "restart changed indices"
# SIGHUP reload, items back in the original order
reorder
kill -HUP "$pid"
until_ok grep -q 'reloading' "$tmp/log" || fail "no reload"
sleep 0.5
until_ok status || fail "daemon not answering after reload"
[ "$(index_of node-2)" = "$i2" ] && [ "$(index_of node-3)" = "$i3" ] || fail "reload changed indices"
grep -q 'peer node-[23]: index' <(sed -n '/reloading/,$p' "$tmp/log") &&
	fail "the reload re-applied an unchanged peer: $(sed -n '/reloading/,$p' "$tmp/log")"
stop_daemon
echo "restart with reordered items and SIGHUP: indices unchanged, nothing re-applied"

# node-3 leaves while the daemon is down
python3 - "$cluster" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["items"] = [i for i in d["items"]
              if i["metadata"]["name"] != "node-3" and i.get("spec", {}).get("nodeName") != "node-3"]
json.dump(d, open(sys.argv[1], "w"), indent=1)
PY
: > "$tmp/log.before"
start_daemon
wait_synced 'peer node-3: remove'
until_ok grep -q 'released the indices of 1 peer' "$tmp/log" || fail "index of node-3 not released"
stop_daemon
grep -q '^peer node-3' "$state/dryrun.state" && fail "node-3 still installed: $(cat "$state/dryrun.state")"
[ -z "$(index_of node-3)" ] || fail "node-3 keeps index $(index_of node-3)"
[ "$(index_of node-2)" = "$i2" ] || fail "node-2 lost its index"
echo "node-3 removed while stopped: removed by the backend after the next start, index released"

# --cleanup removes what the backend installed and the journal
"$build/core/programs/meshcryptd" --config "$tmp/meshcryptd.conf" --plugin-dir "$build/plugins" \
	--cleanup 2>"$tmp/log" || fail "--cleanup failed"
[ ! -e "$state/dryrun.state" ] && [ ! -e "$state/peer-indices" ] || fail "--cleanup left files: $(ls "$state")"
grep -q 'peer node-2: remove' "$tmp/log" || fail "--cleanup did not remove node-2"
echo "--cleanup: everything of ours removed"
