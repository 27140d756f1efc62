#!/usr/bin/env bash
# The cut between libmeshcrypt and the daemon (docs/architecture.md):
#  1. libmeshcrypt exports exactly functions that its installed headers declare;
#  2. no built plugin links (directly or through libmeshcrypt) the daemon's libraries:
#     libmicrohttpd, libsystemd, libiniparser, libltdl;
#  3. nothing includes upward: core/libmeshcrypt/ only its own headers and the SDK's,
#     core/engine/ nothing of core/programs/, plugins nothing of the engine.
# Usage: library-boundary.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

lib=$build/core/libmeshcrypt/libmeshcrypt.so
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
# Every identifier of the SDK headers that is followed by "(" or declared "extern".
declared=$(cat "$src"/include/meshcrypt/*.h | grep -oE '\bmc_[a-z0-9_]+[[:space:]]*\(' | tr -d ' \t(' | sort -u)
[ -n "$exported" ] || fail "libmeshcrypt exports nothing: $lib"
for sym in $exported; do
	grep -qx "$sym" <<<"$declared" || fail "libmeshcrypt exports $sym, which no installed header declares"
done
echo "libmeshcrypt: $(wc -w <<<"$exported") exported symbols, all declared in include/meshcrypt/"

# ldd resolves libmeshcrypt from the build tree: the whole closure of each plugin.
export LD_LIBRARY_PATH=$build/core/libmeshcrypt
n=0
for p in "$build"/plugins/*.so; do
	n=$((n + 1))
	deps=$(ldd "$p")
	for forbidden in libmicrohttpd libsystemd libiniparser libltdl; do
		grep -q "$forbidden" <<<"$deps" && fail "$(basename "$p") links $forbidden: $(grep "$forbidden" <<<"$deps" | head -1)"
	done
	grep -q 'not found' <<<"$deps" && fail "$(basename "$p"): $(grep 'not found' <<<"$deps")"
done
deps=$(ldd "$lib")
for forbidden in libmicrohttpd libsystemd libiniparser libltdl; do
	grep -q "$forbidden" <<<"$deps" && fail "libmeshcrypt links $forbidden"
done
echo "plugins: $n checked, none links the daemon's libraries"

# includes_of DIR: the quoted includes of the C files in DIR, as "file: header".
includes_of() { grep -HoE '^#include "[^"]+"' "$@" 2>/dev/null | sed 's/#include "\(.*\)"/\1/'; }
while IFS=: read -r file header; do
	[ -e "$src/core/libmeshcrypt/$header" ] || fail "$file includes \"$header\", which is not in core/libmeshcrypt/"
done < <(includes_of "$src"/core/libmeshcrypt/*.[ch])
while IFS=: read -r file header; do
	[ -e "$src/core/programs/$header" ] && fail "$file includes \"$header\" of core/programs/"
done < <(includes_of "$src"/core/engine/*.[ch])
while IFS=: read -r file header; do
	[ -e "$src/core/engine/$header" ] && fail "$file includes the engine's \"$header\""
	[ -e "$src/core/libmeshcrypt/$header" ] && fail "$file includes libmeshcrypt's private \"$header\""
done < <(find "$src/plugins" -name '*.[ch]' -print0 | xargs -0 grep -HoE '^#include "[^"]+"' | sed 's/#include "\(.*\)"/\1/' |
	while IFS=: read -r f h; do [ -e "$(dirname "$f")/$h" ] || echo "$f:$h"; done)
echo "includes: libmeshcrypt <- engine <- programs, plugins use the SDK only"

[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
