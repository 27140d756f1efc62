#!/usr/bin/env bash
# SIGHUP reloads meshcryptd's configuration: a bad new configuration is rejected with one
# precise line and the running one stays in force; a good one takes over (here: the daemon
# becomes node-2 of the example cluster); one that is valid but whose required backend fails
# to start is dropped and the running one starts again, so the node keeps its dataplane
# programmed instead of the daemon exiting. SIGTERM then stops it with status 0.
# Usage: sighup-reload.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
write_config() {
	cat > "$tmp/meshcryptd.conf" <<CONF
[core]
node_name = $1
run_dir = run
state_dir = state
$2
[source]
plugin = static
[backend]
plugin = ${3:-dryrun}
[plugin.static]
file = $src/examples/cluster-3node.json
${4:-}
CONF
}

# The real plugins and the test backend (tests/unit/plugins), which fails where it is told to.
mkdir -m 0755 "$tmp/plugins"
cp "$build"/plugins/*.so "$build/tests/unit/backend-tbackend.so" "$tmp/plugins/"
plugin_dir=$tmp/plugins

write_config node-1 ""
start_daemon
until_ok sh -c "'$build/core/programs/meshcryptctl' --run-dir '$tmp/run' plan | grep -q '^local node-1'" ||
	fail "node-1 plan never appeared"
echo "running as node-1"
# the example cluster as node-1 sees it: two peers, its managed pods and theirs
[ "$(ctl peers | grep -c '^peer: node-[23] index [0-9]')" = 2 ] || fail "peers: $(ctl peers)"
ctl pods | grep -qx 'pod: 10.1.1.10 managed, on this node' &&
	ctl pods | grep -q '^pod: 10.1.2.10 managed, on peer node-2 (index [0-9]*)$' &&
	ctl pods | grep -qx 'managed pods: 2 on this node, 6 on peers' || fail "pods: $(ctl pods)"
echo "meshcryptctl peers and pods: 2 peers, 2 + 6 managed pods"

write_config node-2 "workers = lots"
kill -HUP "$pid"
until_ok grep -q 'reload failed: keeping the running configuration' "$tmp/log" ||
	fail "bad configuration not reported"
grep -q 'meshcryptd.conf:5: \[core\] workers = "lots": not an integer' "$tmp/log" ||
	fail "bad configuration not named precisely"
ctl plan | grep -q '^local node-1' || fail "the running configuration did not stay"
echo "bad configuration rejected, node-1 still in force"

write_config node-2 ""
ctl reload | grep -q '^reload requested' || fail "meshcryptctl reload was not taken"
until_ok sh -c "'$build/core/programs/meshcryptctl' --run-dir '$tmp/run' plan | grep -q '^local node-2'" ||
	fail "good configuration not applied"
echo "good configuration applied by meshcryptctl reload: now node-2"

write_config node-3 "" tbackend $'[plugin.tbackend]\nfail_init = yes'
kill -HUP "$pid"
until_ok grep -q 'reload: the new configuration failed to start' "$tmp/log" ||
	fail "failed start of the new configuration not reported"
until_ok grep -q 'started again' "$tmp/log" || fail "the running configuration did not come back"
kill -0 "$pid" 2>/dev/null || fail "meshcryptd exited after a failed reload"
until_ok sh -c "'$build/core/programs/meshcryptctl' --run-dir '$tmp/run' plan | grep -q '^local node-2'" ||
	fail "node-2 plan not back after the failed reload"
echo "new configuration failed to start: node-2 started again"

stop_daemon
echo "sighup-reload: all checks passed"
