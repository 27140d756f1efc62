#!/usr/bin/env bash
# Builds examples/hello-plugin against an installed SDK only (meson install into a temporary
# destdir, pkg-config from there), then has the installed meshcryptd load it.
# Usage: hello-plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$(realpath "$1") src=$(realpath "$2")
tmp=$(mktemp -d /tmp/mc-sdk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
dest=$tmp/root

meson install -C "$build" --destdir "$dest" --quiet --no-rebuild
prefix=$(meson introspect "$build" --buildoptions | python3 -c \
	'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
libdir=$(meson introspect "$build" --buildoptions | python3 -c \
	'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"))')
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac

# Only the installed tree: its .pc files, with paths moved into the destdir.
export PKG_CONFIG_LIBDIR=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
plugindir=$(pkg-config --variable=plugindir meshcrypt-plugin)
# pkgconf puts the sysroot in front of variables too; pkg-config 0.29 does not.
case $plugindir in "$dest"/*) ;; *) plugindir=$dest$plugindir ;; esac
echo "SDK: $(pkg-config --modversion meshcrypt-plugin), ABI $(pkg-config --variable=abi_version meshcrypt-plugin), plugindir $plugindir"

cp -r "$src/examples/hello-plugin" "$tmp/hello"
meson setup "$tmp/hello/build" "$tmp/hello" -Dplugindir="$plugindir" >/dev/null
ninja -C "$tmp/hello/build" >/dev/null
meson install -C "$tmp/hello/build" --quiet
chmod -R go-w "$plugindir"

export LD_LIBRARY_PATH=$dest$libdir
meshcryptd=$dest$prefix/sbin/meshcryptd
"$meshcryptd" --plugin-dir "$plugindir" --list-plugins | tee "$tmp/list"
grep -q '^backend  hello        ABI 1.6' "$tmp/list"

sed -e "s|^plugin = dryrun|plugin = hello|" -e "s|^file = cluster-3node.json|file = $src/examples/cluster-3node.json|" \
	"$src/examples/meshcryptd-static.conf" > "$tmp/hello.conf"
printf '[plugin.hello]\ngreeting = hi\n' >> "$tmp/hello.conf"
"$meshcryptd" --config "$tmp/hello.conf" --plugin-dir "$plugindir" --once 2>"$tmp/log" >/dev/null
cat "$tmp/log"
grep -q 'hello: hi from node node-1' "$tmp/log"
grep -q 'hello: hi, peer node-2' "$tmp/log"
echo "hello-plugin: built against the installed SDK alone and loaded"
