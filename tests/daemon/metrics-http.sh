#!/usr/bin/env bash
# The Prometheus endpoint ([core] metrics_listen): GET /metrics serves the work queue's metrics
# as Prometheus text, other paths and methods are refused, a SIGHUP reload keeps it serving, a
# port already taken costs a warning and nothing else, and a malformed address is a
# configuration error with its file and line.
# Usage: metrics-http.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port/metrics
reconciled() {
	curl -sf "$url" | grep -Eq '^workqueue_adds_total\{name="reconciler"\} [1-9]'
}

static_config run "metrics_listen = 127.0.0.1:$port" > "$tmp/meshcryptd.conf"
start_daemon
until_ok reconciled || fail "no reconciler adds at $url"
body=$(curl -sf -D "$tmp/headers" "$url")
grep -qi '^content-type: text/plain; version=0.0.4' "$tmp/headers" || fail "content type: $(cat "$tmp/headers")"
for family in workqueue_depth workqueue_queue_duration_seconds_bucket \
	workqueue_work_duration_seconds_count workqueue_longest_running_processor_seconds \
	workqueue_retries_total; do
	grep -q "^$family{" <<< "$body" || fail "$family missing from /metrics"
done
echo "GET /metrics serves the work queue metrics"

# A real Prometheus text-format parser (Debian's python3-prometheus-client, so Debian's python3)
# reads all of it, and the engine's own families are there.
/usr/bin/python3 - "$body" <<'PY' || fail "the Prometheus parser rejects /metrics or families are missing"
import sys
from prometheus_client.parser import text_string_to_metric_families

families = {f.name: f for f in text_string_to_metric_families(sys.argv[1])}
want = {"meshcrypt_ready": "gauge", "meshcrypt_reconcile": "counter",
        "meshcrypt_store_objects": "gauge", "meshcrypt_plugin_apply": "counter",
        "meshcrypt_key_generation_published": "gauge", "meshcrypt_xfrm_errors": "counter",
        "meshcrypt_peers": "gauge", "meshcrypt_managed_pods": "gauge", "workqueue_adds": "counter", "workqueue_queue_duration_seconds": "histogram"}
for name, kind in want.items():
    if name not in families or families[name].type != kind:
        sys.exit(f"{name} ({kind}) missing: {sorted(families)}")
pods = [s.value for s in families["meshcrypt_store_objects"].samples if s.labels["kind"] == "pod"]
ready = families["meshcrypt_ready"].samples[0].value
if pods != [pods[0]] or pods[0] < 1 or ready != 1:
    sys.exit(f"store objects {pods}, ready {ready}")
managed = {s.labels["node"]: s.value for s in families["meshcrypt_managed_pods"].samples}
if sorted(managed) != ["local", "peer"] or managed["local"] + managed["peer"] < 1:
    sys.exit(f"managed pods {managed}")
peers = {s.labels["state"]: s.value for s in families["meshcrypt_peers"].samples}
if sorted(peers) != ["applied", "failed", "pending", "retrying"] or sum(peers.values()) != 2:
    sys.exit(f"peers by state {peers}: not the cluster's 2 peers")
print(f"prometheus_client parsed {len(families)} families, {sum(len(f.samples) for f in families.values())} samples")
PY

[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 404 ] || fail "/ not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url")" = 405 ] || fail "POST not 405"
echo "other paths and methods refused"

kill -HUP "$pid"
until_ok grep -q 'reloading' "$tmp/log" || fail "no reload"
until_ok reconciled || fail "endpoint gone after SIGHUP"
echo "still serving after a reload"

# A second daemon on the same port: a warning, and it runs all the same.
mkdir "$tmp/second"
static_config "$tmp/second/run" "metrics_listen = 127.0.0.1:$port" > "$tmp/second/meshcryptd.conf"
"$build/core/programs/meshcryptd" --config "$tmp/second/meshcryptd.conf" --plugin-dir "$build/plugins" \
	2>"$tmp/second/log" &
second=$!
until_ok grep -q "metrics endpoint 127.0.0.1:$port: Address already in use" "$tmp/second/log" ||
	fail "port conflict not reported: $(cat "$tmp/second/log")"
until_ok "$build/core/programs/meshcryptctl" --run-dir "$tmp/second/run" plan ||
	fail "second daemon not running"
kill -TERM "$second"
wait "$second" || fail "second daemon exited $? on SIGTERM"
echo "port taken: warned, running"

static_config run "metrics_listen = localhost:http" > "$tmp/bad.conf"
if "$build/core/programs/meshcryptd" --config "$tmp/bad.conf" --plugin-dir "$build/plugins" \
	--check-config 2>"$tmp/bad.log"; then
	fail "malformed metrics_listen accepted"
fi
grep -q 'bad.conf:5: \[core\] metrics_listen = "localhost:http": not ADDRESS:PORT' "$tmp/bad.log" ||
	fail "malformed metrics_listen not named: $(cat "$tmp/bad.log")"
echo "malformed address refused with its line"

stop_daemon
echo "metrics-http: all checks passed"
