#!/usr/bin/env bash
# The figures of bench/run that need ESP and AES-GCM in the kernel, run inside the lab VM
# (tests/lab/vm bench/vm-figures.sh BUILD_DIR): node churn and convergence of 100, 1,000 and
# 5,000 peers side by side with `ip -batch` (bench/xfrm_bench), and meshcryptd with the xfrm
# backend at 5,000 nodes / 150,000 pods (bench/agent.sh). Under TCG every figure is slower than
# on hardware, ours and ip's alike: compare them side by side only.
set -euo pipefail
build=$1
cd "$(dirname "$0")/.."
"$build/bench/xfrm_bench" -n 100 -r 3
"$build/bench/xfrm_bench" -n 1000 -r 3
"$build/bench/xfrm_bench" -n 5000 -r 1
bench/agent.sh "$build" xfrm 5000
