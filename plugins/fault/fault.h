/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fault injection, for tests: netlink requests, BPF map changes and HTTP requests that fail
 * with a chosen error at chosen calls, so that tests can show every failure is retried and the
 * dataplane still converges (docs/testing.md, "Fault injection").
 *
 * MC_FAULTS="POINT=ERRNO:EVERY[:LIMIT],..." in meshcryptd's environment, POINT one of
 *   netlink   a request to the kernel (plugins/netlink-common: both backends)
 *   bpf-map   an update or delete of a BPF map (plugins/attach-common)
 *   http      a request to the Kubernetes API (plugins/source-k8s)
 * ERRNO a name (ENOBUFS, EIO, ...) or number; every EVERY-th call of the point fails, at most
 * LIMIT times in all (default: no limit), so that a test can watch the faults stop.
 *
 * Built only where MC_FAULT_INJECTION is defined: debug and debugoptimized builds (meson option
 * fault_injection). In a release build mcf_fault() is a constant 0 and MC_FAULTS is ignored.
 */
#ifndef MC_FAULT_H
#define MC_FAULT_H

#ifdef MC_FAULT_INJECTION
/* 0, or the -errno this call of point must fail with. Thread-safe. */
int mcf_fault(const char *point);
#else
static inline int mcf_fault(const char *point)
{
	(void)point;
	return 0;
}
#endif

#endif
