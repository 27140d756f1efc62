#!/usr/bin/env bash
# Key material in meshcryptd's memory never reaches a core dump, nor a process of the same
# user: the daemon makes itself not dumpable at once (prctl PR_SET_DUMPABLE 0). Seen from
# outside: the /proc files of a process that is not dumpable belong to root, whoever runs it,
# so the daemon is run as nobody here. Needs root (to run it as nobody); skips otherwise.
# Usage: no-core.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	echo "SKIP: needs root and setpriv to run meshcryptd as nobody"
	exit 77
fi
static_config "$tmp/run" "metrics_listen =" > "$tmp/meshcryptd.conf"
chown -R nobody "$tmp"
chmod 0755 "$tmp"
setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
	"$build/core/programs/meshcryptd" --config "$tmp/meshcryptd.conf" \
	--plugin-dir "$build/plugins" 2>"$tmp/log" &
pid=$!
until_ok test -S "$tmp/run/meshcryptd.sock" || fail "meshcryptd did not start as nobody"
[ "$(awk '$1 == "Uid:" { print $2 }' "/proc/$pid/status")" = "$(id -u nobody)" ] || fail "not running as nobody"
owner=$(stat -c %U "/proc/$pid/environ")
[ "$owner" = root ] || fail "/proc/$pid/environ belongs to $owner: the daemon is dumpable"
echo "meshcryptd as nobody: its /proc files are root's, so it is not dumpable (no core file)"
kill -TERM "$pid"
wait "$pid" || fail "meshcryptd exited $? on SIGTERM"
pid=
echo "no-core: all checks passed"
