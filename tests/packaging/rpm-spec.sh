#!/usr/bin/env bash
# packaging/rpm/meshcrypt.spec passes rpmlint without errors (rpmlint and rpm from Debian: the
# spec is checked, not built; an RPM build needs an RPM distribution's macros and packages).
# Usage: rpm-spec.sh SOURCE_DIR
set -euo pipefail
for cmd in rpmlint rpm; do
	command -v "$cmd" >/dev/null || { echo "SKIP: no $cmd"; exit 77; }
done
out=$(rpmlint "$1/packaging/rpm/meshcrypt.spec" 2>&1) || true
echo "$out" | tail -5
grep -q " 0 errors" <<<"$out" || { echo "FAIL: rpmlint reports errors"; exit 1; }
