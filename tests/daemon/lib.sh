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

ctl() { "$build/core/meshcryptctl" --run-dir "$tmp/run" "$@"; }

fail() {
	echo "FAIL: $*" >&2
	cat "$tmp/log" >&2
	exit 1
}

# start_daemon: runs meshcryptd on $tmp/meshcryptd.conf (run_dir must be "run"), log in $tmp/log,
# with the plugins of $plugin_dir (default: the build's).
start_daemon() {
	"$build/core/meshcryptd" --config "$tmp/meshcryptd.conf" \
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
