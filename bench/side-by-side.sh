#!/usr/bin/env bash
# Side-by-side figures for the work queue. Runs each PROGRAM once per round, in turn, for RUNS
# rounds, and prints for each the quartiles and the maximum of items/s. This machine's speed
# swings from minute to minute, so only programs run in the same rounds compare
# (docs/performance.md).
#
# A PROGRAM is anything that takes `-r 1 WORKLOAD` and prints workqueue_bench's line: the
# workqueue_bench of any commit, bench/naive_queue_bench for (a). The client-go anchor
# (a program whose name contains client-go) takes only `WORKLOAD`. BENCH_ARGS (e.g. -m for
# metrics on) go to every program but the anchor, whose queue has client-go's no-op metrics.
#
#   bench/side-by-side.sh 11 a build/bench/workqueue_bench /tmp/old/workqueue_bench \
#       build/bench/naive_queue_bench
set -euo pipefail
if [ $# -lt 3 ]; then
	echo "usage: $0 RUNS WORKLOAD PROGRAM..." >&2
	exit 2
fi
runs=$1 workload=$2
shift 2
for _ in $(seq "$runs"); do
	for program in "$@"; do
		case $program in
		*client-go*) "$program" "$workload" | awk -v p="$program" '{ print p, $4 }' ;;
		*) "$program" ${BENCH_ARGS:-} -r 1 "$workload" |
			awk -v p="$program${BENCH_ARGS:+[${BENCH_ARGS// /_}]}" '{ print p, $4 }' ;;
		esac
	done
done | sort -k1,1 -k2,2n | awk '
	{ v[$1] = v[$1] " " $2 }
	END {
		for (p in v) {
			n = split(v[p], a, " ")
			printf "%-40s runs %2d  q1 %.2f M  median %.2f M  q3 %.2f M  max %.2f M\n", p, n,
			       a[int(n / 4) + 1] / 1e6, a[int((n + 1) / 2)] / 1e6, a[int(3 * n / 4)] / 1e6,
			       a[n] / 1e6
		}
	}'
