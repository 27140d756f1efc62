#!/usr/bin/env bash
# meshcryptd speaks systemd's notify protocol (Type=notify, WatchdogSec=): READY=1 once it runs,
# STATUS= from its source, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM, and
# WATCHDOG=1 at half the interval systemd asks for, from its main loop, so a loop that hangs
# gets the agent restarted. A small datagram listener stands in for systemd.
# Usage: notify.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
static_config run "metrics_listen =" > "$tmp/meshcryptd.conf"
python3 - "$tmp/notify.sock" "$tmp/notify.log" <<'PY' &
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
listener=$!
for _ in $(seq 100); do [ -S "$tmp/notify.sock" ] && break; sleep 0.02; done
touch "$tmp/notify.log"

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
echo "notify: all checks passed"
