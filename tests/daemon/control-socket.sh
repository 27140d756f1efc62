#!/usr/bin/env bash
# The control socket never stalls meshcryptd's loop and never kills it (issue 9): with 20,000
# pods, `meshcryptctl plan | head`, a client that never reads, one that says half a line, and
# ones that go away early leave the daemon alive, quiet in its log, and `status` answering
# within 200 ms. A second daemon on the same run_dir is refused; a killed one's socket is
# replaced.
# Usage: control-socket.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
pods=20000
big_cluster "$pods" > "$tmp/cluster.json"
static_config "$tmp/run" "metrics_listen =" |
	sed -e "s|^file = .*|file = $tmp/cluster.json|" -e '/^state_dir =/d' \
		-e "/^run_dir =/a state_dir = $tmp/state" > "$tmp/meshcryptd.conf"
sock=$tmp/run/meshcryptd.sock

plan_pods() { ctl plan 2>/dev/null | grep -cE '^(local|remote)-pod '; }
all_pods() { [ "$(plan_pods)" = $((2 * pods)) ]; }
alive() { kill -0 "$pid" 2>/dev/null || fail "meshcryptd died"; }

start_daemon
for _ in $(seq 50); do all_pods && break; sleep 0.2; done
all_pods || fail "the plan never showed all $pods pods"

# The answer read completely: every pod, both addresses, and the plan ends with a newline.
ctl plan > "$tmp/plan"
[ "$(grep -cE '^(local|remote)-pod ' "$tmp/plan")" = $((2 * pods)) ] || fail "short plan"
[ "$(tail -c 1 "$tmp/plan" | od -An -c | tr -d ' ')" = '\n' ] || fail "plan cut mid-line"
# status counts the managed pods as the plan lists them, and so does `pods`
want="managed pods: $(grep -c '^local-pod ' "$tmp/plan") on this node, $(grep -c '^remote-pod ' "$tmp/plan") on peers"
ctl status | grep -qxF "$want" || fail "status lacks \"$want\": $(ctl status | grep '^managed')"
ctl pods | tail -n 1 | grep -qxF "$want" || fail "pods lacks \"$want\""

for i in 1 2 3 4 5; do
	out=$(ctl plan | head -c 10)
	[ "$out" = "local node" ] || fail "plan | head -c 10, run $i: \"$out\""
	alive
done

# Clients that go away: at once, mid-answer, and one that sends half a line and stalls.
python3 - "$sock" <<'PY' || fail "misbehaving clients"
import socket, sys, time
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    return s
conn().close()
s = conn(); s.sendall(b"plan\n"); s.recv(4096); s.close()
s = conn(); s.sendall(b"plan\n"); s.close()
half = conn(); half.sendall(b"pl")
s = conn(); s.sendall(b"status\n")
assert b"" != s.recv(4096)
time.sleep(6)  # past the 5 s to send a command line: the daemon hangs up
half.settimeout(2)
assert half.recv(4096) == b"", "half a line kept open"
PY
alive

# A client that sends `plan` and never reads, held 30 s: status keeps answering within 200 ms.
python3 - "$sock" "$build/core/programs/meshcryptctl" "$tmp/run" > "$tmp/latency" <<'PY' ||
import socket, subprocess, sys, time
stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
stall.connect(sys.argv[1])
stall.sendall(b"plan\n")
worst, n, end = 0.0, 0, time.monotonic() + 30
while time.monotonic() < end:
    t = time.monotonic()
    r = subprocess.run([sys.argv[2], "--run-dir", sys.argv[3], "status"], capture_output=True,
                       timeout=5)
    dt = time.monotonic() - t
    if r.returncode != 0:
        sys.exit("status failed: %r" % r.stderr)
    worst, n = max(worst, dt), n + 1
    time.sleep(0.05)
print("%d status calls, max %.1f ms" % (n, worst * 1000))
sys.exit(1 if worst > 0.2 else 0)
PY
	fail "status with a stalled client: $(cat "$tmp/latency")"
echo "stalled client: $(cat "$tmp/latency")"
alive

# A second daemon on the same run_dir: refused, the first keeps its socket and answers.
"$build/core/programs/meshcryptd" --config "$tmp/meshcryptd.conf" \
	--plugin-dir "$build/plugins" 2>"$tmp/log2" &
second=$!
for _ in $(seq 100); do grep -q "control socket" "$tmp/log2" && break; sleep 0.05; done
grep -q "control socket.*in use" "$tmp/log2" || fail "second daemon: $(cat "$tmp/log2")"
kill "$second"; wait "$second" || true
[ -S "$sock" ] || fail "the second daemon removed the first one's socket"
status > /dev/null || fail "the first daemon stopped answering"
alive

# Nothing alarming in the log for all this.
if grep -Ei 'warning|error|^<[0-4]>' "$tmp/log"; then
	fail "warnings in the log"
fi

stop_daemon
[ ! -e "$sock" ] || fail "socket left behind after SIGTERM"

# A killed daemon's stale socket is replaced by the next one.
start_daemon
until_ok status || fail "no answer"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
pid=
[ -S "$sock" ] || fail "kill -9 should leave the socket behind"
start_daemon
until_ok status || fail "the stale socket was not replaced"
grep -qi "in use" "$tmp/log" && fail "stale socket taken for a live daemon"
stop_daemon
[ ! -e "$sock" ] || fail "socket left behind after SIGTERM"
# with the daemon down: one clear line on stderr, nothing on stdout, exit 1
rc=0
ctl status >"$tmp/down.out" 2>"$tmp/down.err" || rc=$?
[ "$rc" = 1 ] || fail "meshcryptctl with the daemon down exits $rc"
[ ! -s "$tmp/down.out" ] && [ "$(wc -l <"$tmp/down.err")" = 1 ] &&
	grep -q "^meshcryptctl: meshcryptd is not running" "$tmp/down.err" ||
	fail "meshcryptctl with the daemon down: $(cat "$tmp/down.err")"
echo "daemon down: $(cat "$tmp/down.err")"
echo ok
