#!/usr/bin/env bash
# meshcryptd speaks systemd's notify protocol (Type=notify, WatchdogSec=): READY=1 once it runs,
# STATUS= from its source, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM, and
# WATCHDOG=1 at half the interval systemd asks for, from its main loop, so a loop that hangs
# gets the agent restarted; while a reconcile worker is stuck on one key for longer than the
# interval, the pings stop too. A small datagram listener stands in for systemd.
# Usage: notify.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
static_config run "metrics_listen =" > "$tmp/meshcryptd.conf"
cat >"$tmp/listener.py" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(0.2)
end = time.monotonic() + 20
with open(sys.argv[2], "a", buffering=1) as log:
    while time.monotonic() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        for line in msg.splitlines():
            log.write("%.3f %s\n" % (time.monotonic(), line))
        if "STOPPING=1" in msg:
            break
PY
# listen: a datagram socket in place of systemd's, every line logged with its time
listen() {
	rm -f "$tmp/notify.sock" "$tmp/notify.log"
	python3 "$tmp/listener.py" "$tmp/notify.sock" "$tmp/notify.log" &
	listener=$!
	for _ in $(seq 100); do [ -S "$tmp/notify.sock" ] && break; sleep 0.02; done
	touch "$tmp/notify.log"
}
listen

# 200 ms: pings every 100 ms.
NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=200000 start_daemon
until_log() { # PATTERN [COUNT]
	for _ in $(seq 250); do
		[ "$(grep -c -- "$1" "$tmp/notify.log")" -ge "${2:-1}" ] && return 0
		sleep 0.02
	done
	return 1
}
until_log 'READY=1' || fail "no READY=1: $(cat "$tmp/notify.log")"
until_log 'STATUS=' || fail "no STATUS=: $(cat "$tmp/notify.log")"
until_log 'WATCHDOG=1' 5 || fail "fewer than 5 WATCHDOG=1 in 5 s: $(cat "$tmp/notify.log")"
echo "READY, STATUS and watchdog pings sent"

kill -HUP "$pid"
until_log 'RELOADING=1' || fail "no RELOADING=1 on SIGHUP"
until_log 'READY=1' 2 || fail "no READY=1 after the reload"
echo "RELOADING then READY around SIGHUP"

stop_daemon
wait "$listener" || true
grep -q 'STOPPING=1' "$tmp/notify.log" || fail "no STOPPING=1 on SIGTERM: $(cat "$tmp/notify.log")"
echo "STOPPING on SIGTERM"

# A backend whose every peer apply takes 1 s (the test backend of tests/unit/plugins): with a
# 200 ms watchdog, the pings stop while a worker is on one key, and resume after.
mkdir -m 0755 "$tmp/plugins"
cp "$build"/plugins/*.so "$build/tests/unit/backend-tbackend.so" "$tmp/plugins/"
static_config run "metrics_listen =" | sed 's/^plugin = dryrun$/plugin = tbackend/' >"$tmp/meshcryptd.conf"
printf '[plugin.tbackend]\nhang_apply = 1s\n' >>"$tmp/meshcryptd.conf"
listen
plugin_dir=$tmp/plugins NOTIFY_SOCKET=$tmp/notify.sock WATCHDOG_USEC=200000 start_daemon
until_log 'READY=1' || fail "no READY=1 with the hanging backend: $(cat "$tmp/log")"
sleep 3
grep -q "has been on one key for more than 200 ms" "$tmp/log" || fail "no stuck worker reported: $(cat "$tmp/log")"
# the longest gap between two pings
gap=$(awk '/WATCHDOG=1/ { if (t) { g = $1 - t; if (g > max) max = g } t = $1 } END { print max + 0 }' "$tmp/notify.log")
awk -v g="$gap" 'BEGIN { exit !(g > 0.5) }' || fail "the pings went on while a worker was stuck (longest gap $gap s)"
n=$(grep -c WATCHDOG=1 "$tmp/notify.log")
until_log 'WATCHDOG=1' $((n + 3)) || fail "the pings did not resume"
echo "watchdog: no pings for $gap s while a worker was stuck, then again"
stop_daemon
wait "$listener" || true
echo "notify: all checks passed"
