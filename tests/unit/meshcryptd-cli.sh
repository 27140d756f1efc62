#!/usr/bin/env bash
# meshcryptd's command line: each bad configuration is refused with exactly one precise error
# line and a non-zero exit; --list-plugins shows kinds and ABI versions; a plugin of another
# ABI major is refused naming both versions; --once prints the plan of the example cluster.
# Usage: meshcryptd-cli.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
# MC_TEST_WRAPPER, when set, runs in front of each of our binaries (tests/analyze/memcheck, tests/analyze/tsan)
meshcryptd=(${MC_TEST_WRAPPER:+"$MC_TEST_WRAPPER"} "$build/core/programs/meshcryptd")
meshcryptctl=(${MC_TEST_WRAPPER:+"$MC_TEST_WRAPPER"} "$build/core/programs/meshcryptctl")
tmp=$(mktemp -d /tmp/mc-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
mkdir -m 755 "$tmp/plugins"
cp "$build"/plugins/*.so "$tmp/plugins/"
failures=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect_refusal NAME EXPECTED-SUBSTRING: config from stdin, run --check-config.
expect_refusal() {
	local name=$1 want=$2 conf=$tmp/$1.conf out rc=0
	cat > "$conf"
	out=$("${meshcryptd[@]}" --config "$conf" --plugin-dir "$tmp/plugins" --check-config 2>&1 >/dev/null) || rc=$?
	if [ "$rc" = 0 ]; then fail "$name: exit 0"; return; fi
	if [ "$(printf '%s\n' "$out" | wc -l)" != 1 ]; then fail "$name: not one line: $out"; return; fi
	case $out in *"$want"*) echo "ok: $name: $out" ;; *) fail "$name: '$out' lacks '$want'" ;; esac
}

base="[source]
plugin = static
[backend]
plugin = dryrun
[plugin.static]
file = $src/examples/cluster-3node.json"

expect_refusal syntax 'syntax error: "workers"' <<< "[core]
workers"
expect_refusal unknown-section '[sorce]: unknown section' <<< "$base
[sorce]
plugin = x"
expect_refusal unknown-key '[core] wrokers = "2": unknown key' <<< "[core]
wrokers = 2
$base"
expect_refusal wrong-type '[core] workers = "many": not an integer' <<< "[core]
workers = many
$base"
expect_refusal out-of-range '[core] workers = "0": out of range [1, 64]' <<< "[core]
workers = 0
$base"
expect_refusal bad-bool '[backend] required = "sometimes": not a boolean' <<< "$base
[backend]
required = sometimes"
expect_refusal bad-duration '[core] resync_interval = "soon": not a duration' <<< "[core]
resync_interval = soon
$base"
expect_refusal bad-enum '[core] inbound = "deny": must be one of require|permit' <<< "[core]
inbound = deny
$base"
expect_refusal missing-plugin-key '[source]: missing required key "plugin"' <<< "[backend]
plugin = dryrun"
expect_refusal bad-mark 'encrypt_mark = "0x1e0": has bits outside role_mask' <<< "[core]
encrypt_mark = 0x1e0
$base"
expect_refusal plugin-unknown-key '[plugin.static] flie = "/x": unknown key' <<< "$base
flie = /x"
expect_refusal plugin-missing-key '[plugin.static]: missing required key "file"' <<< "[source]
plugin = static
[backend]
plugin = dryrun"
expect_refusal unselected-plugin-section 'selects plugin "xfrm"' <<< "$base
[plugin.xfrm]
key_file = /k"
expect_refusal no-such-plugin 'no backend plugin "xfrn"' <<< "[source]
plugin = static
[backend]
plugin = xfrn
[plugin.static]
file = /x"

# a plugin built for another ABI major
cp "$build/tests/unit/backend-badabi.so" "$tmp/plugins/"
expect_refusal wrong-abi 'incompatible plugin ABI 2.0, this meshcryptd has ABI 1.6' <<< "[source]
plugin = static
[backend]
plugin = badabi
[plugin.static]
file = /x"
list=$("${meshcryptd[@]}" --plugin-dir "$tmp/plugins" --list-plugins)
grep -q '^backend  dryrun       ABI 1.6' <<< "$list" || fail "--list-plugins lacks dryrun: $list"
grep -q '^source   static       ABI 1.6' <<< "$list" || fail "--list-plugins lacks static: $list"
grep -q '^refused  .*incompatible plugin ABI 2.0, this meshcryptd has ABI 1.6' <<< "$list" ||
	fail "--list-plugins does not refuse badabi: $list"
rm "$tmp/plugins/backend-badabi.so"

# a group-writable plugin directory
chmod 775 "$tmp/plugins"
expect_refusal writable-dir 'group- or world-writable' <<< "$base"
chmod 755 "$tmp/plugins"

# the good example is accepted and its plan printed
"${meshcryptd[@]}" --config "$src/examples/meshcryptd-static.conf" --plugin-dir "$tmp/plugins" \
	--check-config >/dev/null || fail "example config refused"
# in a state directory of its own: the dryrun backend remembers what it "installed" there
sed -e "s|^state_dir = .*|state_dir = $tmp/state|" -e "s|^run_dir = .*|run_dir = $tmp/run|" \
	-e "s|^file = cluster-3node.json|file = $src/examples/cluster-3node.json|" \
	"$src/examples/meshcryptd-static.conf" > "$tmp/example.conf"
plan=$("${meshcryptd[@]}" --config "$tmp/example.conf" --plugin-dir "$tmp/plugins" \
	--once 2>"$tmp/log") || fail "--once failed: $(cat "$tmp/log")"
grep -q 'node-2' <<< "$plan" || fail "plan lacks peer node-2: $plan"
grep -q 'peer node-3: index [0-9]*, addresses' "$tmp/log" || fail "dryrun did not log peer node-3: $(cat "$tmp/log")"

# bash completion: the commands meshcryptctl's help lists, nothing after a command
completions=$(bash -c 'source "$1"; COMP_WORDS=(meshcryptctl ""); COMP_CWORD=1; _meshcryptctl
	printf "%s\n" "${COMPREPLY[@]}"' sh "$src/packaging/bash-completion/meshcryptctl" | sort | tr '\n' ' ')
listed=$("${meshcryptctl[@]}" --help | awk '/^Commands:/ { on = 1; next } /^Options:/ { on = 0 }
	on && /^  [a-z]/ { print $1 }' | sort | tr '\n' ' ')
if [ "$completions" = "$listed" ]; then
	echo "ok: bash completion offers $completions"
else
	echo "FAIL: bash completion offers '$completions', meshcryptctl --help lists '$listed'"
	failures=$((failures + 1))
fi

if [ "$failures" != 0 ]; then
	echo "$failures failed"
	exit 1
fi
echo "all meshcryptd CLI checks passed"
