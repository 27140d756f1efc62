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
	printf '[core]\nnode_name = node-1\nrun_dir = %s\n' "$run"
	printf '%s\n' "$@"
	printf '[source]\nplugin = static\n[backend]\nplugin = dryrun\n'
	printf '[plugin.static]\nfile = %s\n' "$src/examples/cluster-3node.json"
}
