/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * `meshcryptctl xfrm-errors`: the non-zero counters of /proc/net/xfrm_stat, each with what it
 * counts (the kernel's Documentation/networking/xfrm_proc.rst) and what usually causes it in a
 * meshcrypt node, so that an operator reads a cause, not a counter name.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xfrm-errors.h"

static const struct {
	const char *name, *meaning, *cause;
} counters[] = {
	{ "XfrmInError", "inbound errors not counted elsewhere", "see the other In counters" },
	{ "XfrmInBufferError", "no buffer for an inbound packet", "memory pressure" },
	{ "XfrmInHdrError", "malformed ESP header", "corrupted or forged packets" },
	{ "XfrmInNoStates", "ESP for an SPI and address this node has no in state for",
	  "a peer encrypts with a generation or boot ID this node has not installed (a peer "
	  "re-keyed first, or this node's in state was deleted)" },
	{ "XfrmInStateProtoError", "ESP that failed to decrypt or authenticate",
	  "the two nodes derived different keys: different key material, or different boot IDs "
	  "in their MeshcryptNodes" },
	{ "XfrmInStateModeError", "inbound transformation mode error",
	  "a state in a mode meshcrypt does not use (tunnel only)" },
	{ "XfrmInStateSeqError", "ESP outside the replay window",
	  "a sender's out state restarted its sequence numbers (restored after a flush), or "
	  "duplicated packets" },
	{ "XfrmInStateExpired", "ESP for an expired in state",
	  "a lifetime set on one of meshcrypt's states behind its back" },
	{ "XfrmInStateMismatch", "ESP that does not match its state's selector or options",
	  "a state changed behind meshcrypt's back" },
	{ "XfrmInStateInvalid", "ESP for an invalid state", "a state being deleted" },
	{ "XfrmInTmplMismatch", "a policy requires ESP for traffic that did not arrive as ESP",
	  "plaintext from a managed remote pod under inbound = require (a peer that does not "
	  "encrypt to this node yet, or spoofed packets), or a foreign policy" },
	{ "XfrmInNoPols", "ESP decrypted but no in policy allows it",
	  "this node's in/fwd policies are missing (deleted, or not yet installed)" },
	{ "XfrmInPolBlock", "inbound packets dropped by a block policy", "a foreign policy" },
	{ "XfrmInPolError", "inbound policy errors", "a policy being changed" },
	{ "XfrmAcquireError", "a state not fully acquired before use",
	  "a foreign policy with a template no state satisfies (meshcrypt never acquires)" },
	{ "XfrmFwdHdrError", "forwarded packets not allowed by policy", "a foreign fwd policy" },
	{ "XfrmInStateDirError", "ESP for a state of the other direction",
	  "an out state where an in state belongs (changed behind meshcrypt's back)" },
	{ "XfrmOutError", "outbound errors not counted elsewhere", "see the other Out counters" },
	{ "XfrmOutBundleGenError", "could not build the transformation for a packet",
	  "an out state missing for a policy's template, or memory pressure" },
	{ "XfrmOutBundleCheckError", "a cached transformation no longer valid",
	  "states or policies being replaced (a re-key)" },
	{ "XfrmOutNoStates", "a policy requires ESP but its out state is missing",
	  "an out state deleted behind meshcrypt's back or not yet installed; the leak guard "
	  "drops what would go out in plaintext meanwhile" },
	{ "XfrmOutStateProtoError", "outbound encryption errors", "a state with bad parameters" },
	{ "XfrmOutStateModeError", "outbound transformation mode error",
	  "a state in a mode meshcrypt does not use" },
	{ "XfrmOutStateSeqError", "the out state's sequence number would wrap",
	  "an out state without ESN (not one of meshcrypt's)" },
	{ "XfrmOutStateExpired", "packets for an expired out state",
	  "a lifetime set on one of meshcrypt's states behind its back" },
	{ "XfrmOutPolBlock", "outbound packets dropped by a block policy", "a foreign policy" },
	{ "XfrmOutPolDead", "packets for a policy being deleted", "a policy replaced meanwhile" },
	{ "XfrmOutPolError", "outbound policy errors", "a policy being changed" },
	{ "XfrmOutStateInvalid", "packets for an invalid out state", "a state being deleted" },
	{ "XfrmOutStateDirError", "an in state used for outbound packets",
	  "a state changed behind meshcrypt's back" },
};

static size_t find(const char *name)
{
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		if (strcmp(counters[i].name, name) == 0)
			return i;
	return (size_t)-1;
}

int mc_xfrm_errors_write(FILE *in, FILE *out)
{
	char name[64];
	unsigned long long value;
	size_t shown = 0;
	int n;

	while ((n = fscanf(in, "%63s %llu", name, &value)) == 2) {
		size_t i = find(name);

		if (!value)
			continue;
		shown++;
		if (i == (size_t)-1)
			fprintf(out, "%s %llu\n", name, value);
		else
			fprintf(out, "%s %llu: %s; likely: %s\n", name, value, counters[i].meaning,
				counters[i].cause);
	}
	if (n != EOF || ferror(in))
		return -EBADMSG;
	if (!shown)
		fputs("no xfrm errors (every counter of /proc/net/xfrm_stat is 0)\n", out);
	return ferror(out) ? -EIO : 0;
}
