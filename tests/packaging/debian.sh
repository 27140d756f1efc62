#!/usr/bin/env bash
# The Debian packages (packaging/debian): built from a copy of the source tree with
# dpkg-buildpackage -us -uc -b, checked by lintian (no errors), installed on this machine,
# the installed unit verified (systemd-analyze verify; PID 1 here is not systemd, so the unit is
# not started by systemd) and its ExecStart= run with the static source and the dryrun backend
# until meshcryptctl says ready, then purged: nothing of the packages is left.
# Usage: debian.sh SOURCE_DIR
set -euo pipefail
src=$1
((EUID == 0)) || { echo "SKIP: needs root (dpkg -i)"; exit 77; }
for cmd in dpkg-buildpackage lintian dh; do
	command -v "$cmd" >/dev/null || { echo "SKIP: $cmd not installed"; exit 77; }
done
if dpkg -s meshcrypt >/dev/null 2>&1; then
	echo "SKIP: a meshcrypt package is installed on this machine already"
	exit 77
fi
tmp=$(mktemp -d)
daemon=
cleanup() {
	[[ -z $daemon ]] || kill -KILL "$daemon" 2>/dev/null || true
	dpkg --purge meshcrypt-dev meshcrypt >/dev/null 2>&1 || true
	rm -rf "$tmp" /etc/meshcrypt /run/meshcrypt
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir "$tmp/meshcrypt-0.1.0"
tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$tmp/meshcrypt-0.1.0" -xf -
cp -r "$src/packaging/debian" "$tmp/meshcrypt-0.1.0/debian"
(cd "$tmp/meshcrypt-0.1.0" && DEB_BUILD_OPTIONS=nocheck dpkg-buildpackage -us -uc -b) \
	>"$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; fail "dpkg-buildpackage failed"; }
debs=("$tmp"/meshcrypt_*.deb "$tmp"/meshcrypt-dev_*.deb)
echo "built: ${debs[*]##*/}"
lintian --fail-on error --no-tag-display-limit "${debs[@]}" >"$tmp/lintian.log" 2>&1 ||
	{ cat "$tmp/lintian.log"; fail "lintian reports errors"; }
echo "lintian: no errors ($(grep -c '^W:' "$tmp/lintian.log" || true) warnings)"

dpkg -i "${debs[@]}" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "dpkg -i failed"; }
unit=/lib/systemd/system/meshcryptd.service
for f in /usr/sbin/meshcryptd /usr/bin/meshcryptctl "$unit" /usr/lib/modules-load.d/meshcrypt.conf \
	/usr/include/meshcrypt/plugin.h /usr/share/bash-completion/completions/meshcryptctl \
	/usr/share/man/man8/meshcryptd.8.gz /usr/share/man/man5/meshcrypt.ini.5.gz; do
	[[ -e $f ]] || fail "$f is not installed"
done
ls /usr/lib/*/meshcrypt/plugins-*/backend-dryrun.so >/dev/null || fail "no plugins installed"
pkg-config --exists meshcrypt-plugin || fail "meshcrypt-plugin.pc not found"
systemd-analyze verify --man=no "$unit" || fail "systemd-analyze verify $unit"
echo "installed; the unit verifies"

# The unit's own command line, with the static source and the dryrun backend.
mkdir -p /etc/meshcrypt
cp "$src/examples/cluster-3node.json" /etc/meshcrypt/cluster.json
cat >/etc/meshcrypt/meshcryptd.conf <<CONF
[core]
node_name = node-1
metrics_listen =
[source]
plugin = static
[backend]
plugin = dryrun
[plugin.static]
file = cluster.json
CONF
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
# shellcheck disable=SC2086 # the unit's command line, split as systemd splits it
$exec_start >"$tmp/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
	meshcryptctl status >"$tmp/status" 2>&1 && break
	sleep 0.1
done
grep -q '^ready: yes' "$tmp/status" || { cat "$tmp/daemon.log" "$tmp/status"; fail "not ready"; }
echo "runs from the installed files: $(grep '^backend:' "$tmp/status"), ready"
kill -TERM "$daemon"
wait "$daemon" || fail "meshcryptd exited $? on SIGTERM"
daemon=

dpkg --purge meshcrypt-dev meshcrypt >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log"; fail "purge failed"; }
for f in /usr/sbin/meshcryptd "$unit" /var/lib/meshcrypt /usr/include/meshcrypt; do
	[[ ! -e $f ]] || fail "$f is left after the purge"
done
! dpkg -s meshcrypt >/dev/null 2>&1 || fail "meshcrypt still installed"
echo "purged: nothing left"
