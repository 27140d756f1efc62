/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The xfrm backend at its boundaries: the key file parser, the HKDF derivation (against a
 * vector from tests/lab/lib/hkdf.py, which shares no code with it), the netlink messages as
 * built byte by byte, and the plugin against the fake host with the netlink transport
 * replaced through the linker's --wrap (transport.c is not linked): every message the
 * plugin sends is captured and answered with the error a test chooses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/xfrm.h>

#include <netlink/msg.h>

#include <cmocka.h>

#include <meshcrypt/host.h>
#include <meshcrypt/metrics.h>
#include <meshcrypt/plugin.h>
#include <meshcrypt/store.h>

#include "../../plugins/backend-xfrm/keys.h"
#include "../../plugins/backend-xfrm/model.h"
#include "../../plugins/backend-xfrm/netlink.h"
#include "fake-host.h"

extern const struct mc_plugin meshcrypt_plugin;

#define KEY36 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223"
#define KEY_LINE "1 rfc4106(gcm(aes)) " KEY36 " 128\n"
#define BOOT1 "11111111-1111-1111-1111-111111111111"
#define BOOT2 "22222222-2222-2222-2222-222222222222"

/* ---- the wrapped transport ---- */

struct sent {
	uint8_t *bytes;
	size_t len;
};

static struct sent sent[256];
static size_t n_sent;
static int fail_type = -1, fail_error; /* answer messages of fail_type with fail_error */
static int dump_error;
/* What a dump answers: NEWSA and NEWPOLICY messages, as the kernel holds them (restart tests) */
static struct sent kernel[64];
static size_t n_kernel;

static void sent_clear(void)
{
	for (size_t i = 0; i < n_sent; i++)
		free(sent[i].bytes);
	n_sent = 0;
}

static const struct nlmsghdr *sent_msg(size_t i)
{
	return (const struct nlmsghdr *)sent[i].bytes;
}

struct mcx_nl *__wrap_mcx_nl_open(void);
struct mcx_nl *__wrap_mcx_nl_open(void)
{
	static int token;

	return (struct mcx_nl *)&token;
}

void __wrap_mcx_nl_close(struct mcx_nl *nl);
void __wrap_mcx_nl_close(struct mcx_nl *nl)
{
}

int __wrap_mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg);
int __wrap_mcx_nl_transact(struct mcx_nl *nl, struct nl_msg *msg)
{
	struct nlmsghdr *h = nlmsg_hdr(msg);
	int type = h->nlmsg_type;

	assert_true(n_sent < 256);
	sent[n_sent].bytes = malloc(h->nlmsg_len);
	memcpy(sent[n_sent].bytes, h, h->nlmsg_len);
	sent[n_sent++].len = h->nlmsg_len;
	nlmsg_free(msg);
	return type == fail_type ? fail_error : 0;
}

int __wrap_mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata);
int __wrap_mcx_nl_dump(struct mcx_nl *nl, uint16_t type, mcx_dump_fn fn, void *userdata)
{
	int r = 0;

	for (size_t i = 0; i < n_kernel && r == 0 && !dump_error; i++) {
		const struct nlmsghdr *h = (const struct nlmsghdr *)kernel[i].bytes;

		if (h && (type == XFRM_MSG_GETSA) == (h->nlmsg_type == XFRM_MSG_NEWSA))
			r = fn(h, userdata);
	}
	return dump_error ? dump_error : r;
}

uint32_t __wrap_mcx_nl_port(const struct mcx_nl *nl);
uint32_t __wrap_mcx_nl_port(const struct mcx_nl *nl)
{
	return 1;
}

int __wrap_mcx_nl_monitor_open(void);
int __wrap_mcx_nl_monitor_open(void)
{
	return dup(0);
}

/* What the monitor's next read delivers: the kernel's notifications (port 0, not ours). */
static struct nlmsghdr *notifications[4];
static size_t n_notifications;

int __wrap_mcx_nl_monitor_read(int fd, uint32_t own_port, bool *foreign, mcx_dump_fn fn,
			       void *userdata);
int __wrap_mcx_nl_monitor_read(int fd, uint32_t own_port, bool *foreign, mcx_dump_fn fn,
			       void *userdata)
{
	*foreign = n_notifications > 0;
	for (size_t i = 0; i < n_notifications; i++) {
		if (fn)
			(void)fn(notifications[i], userdata);
		free(notifications[i]);
	}
	n_notifications = 0;
	return 0;
}

/* ---- keys ---- */

static void test_keys_parse(void **state)
{
	static const char text[] = "# generations\n"
				   "2 rfc4106(gcm(aes)) 0x" KEY36 " 128\n"
				   "\n"
				   "1 rfc4106(gcm(aes)) 000102030405060708090a0b0c0d0e0f10111213 128\n";
	struct mcx_keyset *ks;
	char error[200];

	(void)state;
	assert_int_equal(mcx_keyset_parse(text, strlen(text), &ks, error, sizeof(error)), 0);
	assert_int_equal(ks->n, 2);
	assert_int_equal(ks->k[0].generation, 1);
	assert_int_equal(ks->k[0].len, 20);
	assert_int_equal(ks->k[1].len, 36);
	assert_int_equal(mcx_keyset_current(ks), 2);
	assert_non_null(mcx_keyset_find(ks, 1));
	assert_null(mcx_keyset_find(ks, 3));
	assert_int_equal(mcx_spi(2), 0x102);
	mcx_keyset_free(ks);
	mcx_keyset_free(NULL);
}

static void test_keys_refused(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "1 cbc(aes) " KEY36 " 128\n", "line 1: the algorithm must be rfc4106(gcm(aes))" },
		{ "\n1 rfc4106(gcm(aes)) " KEY36 "zz 128\n", "line 2: the key must be 40, 56 or 72" },
		{ "1 rfc4106(gcm(aes)) 00010203040506070809zz0b0c0d0e0f10111213 128\n",
		  "line 1: the key is not hexadecimal" },
		{ "1 rfc4106(gcm(aes)) " KEY36 " 96\n", "line 1: the ICV length must be 128" },
		{ "1 rfc4106(gcm(aes)) " KEY36 " 128 extra\n", "line 1: unexpected text" },
		{ "0 rfc4106(gcm(aes)) " KEY36 " 128\n", "line 1: the generation must be" },
		{ "x rfc4106(gcm(aes)) " KEY36 " 128\n", "line 1: the generation must be" },
		{ "1 rfc4106(gcm(aes)) " KEY36 " 128\n1 rfc4106(gcm(aes)) " KEY36 " 128\n",
		  "line 2: generation 1 appears twice" },
		{ "# nothing\n", "no key in it" },
		{ "1 rfc4106(gcm(aes))\n", "line 1: the key is missing" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mcx_keyset *ks = (void *)1;
		char error[200] = "";

		assert_int_equal(mcx_keyset_parse(cases[i].text, strlen(cases[i].text), &ks, error,
						  sizeof(error)),
				 -EINVAL);
		assert_null(ks);
		assert_non_null(strstr(error, cases[i].error));
		/* never a key byte in a message */
		assert_null(strstr(error, "0001020304"));
	}
}

static void test_key_file_mode(void **state)
{
	char path[] = "/tmp/test-xfrm-keys-XXXXXX", error[300];
	struct mcx_keyset *ks;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_true(write(fd, KEY_LINE, strlen(KEY_LINE)) == (ssize_t)strlen(KEY_LINE));
	close(fd);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(mcx_keyset_load_file(path, &ks, error, sizeof(error)), -EPERM);
	assert_non_null(strstr(error, "mode 0640"));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(mcx_keyset_load_file(path, &ks, error, sizeof(error)), 0);
	assert_int_equal(ks->n, 1);
	mcx_keyset_free(ks);
	unlink(path);
}

static void test_hkdf_vector(void **state)
{
	/* tests/lab/lib/hkdf.py KEYFILE 1 192.168.100.1 192.168.100.2 BOOT1 BOOT2 */
	static const char want[] = "1f6dab9120e1114443acd35952b2b8d2af6db55cd17f44536290bfe3c80820826e22cb54";
	static const char want6[] = "e2cd66a4082f502456cb6d9164ef87c9043b3879";
	static const char text[] = "1 rfc4106(gcm(aes)) " KEY36 " 128\n"
				   "2 rfc4106(gcm(aes)) 000102030405060708090a0b0c0d0e0f10111213 128\n";
	struct mcx_keyset *ks;
	struct mc_ip a = fake_ip("192.168.100.1"), b = fake_ip("192.168.100.2");
	struct mc_ip a6 = fake_ip("fd00:100::1"), b6 = fake_ip("fd00:100::2");
	uint8_t out[MCX_KEY_MAX];
	char hex[2 * MCX_KEY_MAX + 1], error[100];
	struct mcx_key k2;

	(void)state;
	assert_int_equal(mcx_keyset_parse(text, strlen(text), &ks, error, sizeof(error)), 0);
	assert_int_equal(mcx_derive(mcx_keyset_find(ks, 1), &a, &b, BOOT1, BOOT2, out), 0);
	for (size_t i = 0; i < 36; i++)
		sprintf(hex + 2 * i, "%02x", out[i]);
	assert_string_equal(hex, want);
	/* the vector's IPv6 case is generation 1 of a 20-byte key: */
	k2 = *mcx_keyset_find(ks, 2);
	k2.generation = 1;
	assert_int_equal(mcx_derive(&k2, &a6, &b6, BOOT1, BOOT2, out), 0);
	for (size_t i = 0; i < 20; i++)
		sprintf(hex + 2 * i, "%02x", out[i]);
	assert_string_equal(hex, want6);
	/* a MAC context kept between derivations gives the same keys, again and again */
	{
		struct mcx_mac *mac = mcx_mac_new();
		uint8_t with[MCX_KEY_MAX];

		assert_non_null(mac);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(mcx_derive_with(mac, &k2, &a6, &b6, BOOT1, BOOT2, with), 0);
			assert_memory_equal(with, out, 20);
		}
		mcx_mac_free(mac);
		mcx_mac_free(NULL);
	}
	/* the other direction is another key */
	assert_int_equal(mcx_derive(mcx_keyset_find(ks, 1), &b, &a, BOOT2, BOOT1, out), 0);
	for (size_t i = 0; i < 36; i++)
		sprintf(hex + 2 * i, "%02x", out[i]);
	assert_string_not_equal(hex, want);
	mcx_keyset_free(ks);
}

/* ---- messages ---- */

static struct mcx_sa in_state(void)
{
	struct mcx_sa sa;

	memset(&sa, 0, sizeof(sa));
	sa.src = fake_ip("192.168.100.2");
	sa.dst = fake_ip("192.168.100.1");
	sa.spi = 0x101;
	sa.reqid = 0x6d63;
	sa.mark = 0x000700d0;
	sa.mark_mask = 0xffff00f0;
	sa.replay_window = 128;
	sa.esn = true;
	sa.lifetime_infinite = true;
	sa.algo_ok = true;
	sa.key_len = 36;
	for (int i = 0; i < 36; i++)
		sa.key[i] = (uint8_t)i;
	return sa;
}

static void test_sa_message_bytes(void **state)
{
	struct mcx_sa sa = in_state(), back;
	struct nlattr *tb[XFRMA_MAX + 1];
	const struct xfrm_usersa_info *info;
	const struct xfrm_algo_aead *aead;
	const struct xfrm_replay_state_esn *esn;
	const struct xfrm_mark *mark;
	struct nl_msg *msg;
	struct nlmsghdr *h;

	(void)state;
	assert_int_equal(mcx_sa_message(&sa, XFRM_MSG_NEWSA, &msg), 0);
	h = nlmsg_hdr(msg);
	assert_int_equal(h->nlmsg_type, XFRM_MSG_NEWSA);
	info = nlmsg_data(h);
	assert_int_equal(info->id.spi, htonl(0x101));
	assert_int_equal(info->id.proto, IPPROTO_ESP);
	assert_int_equal(info->family, AF_INET);
	assert_int_equal(info->mode, XFRM_MODE_TUNNEL);
	assert_int_equal(info->reqid, 0x6d63);
	assert_int_equal(info->flags, XFRM_STATE_ESN);
	assert_int_equal(info->replay_window, 0); /* the kernel wants it in the ESN attribute */
	assert_true(info->lft.hard_byte_limit == XFRM_INF && info->lft.hard_packet_limit == XFRM_INF);
	assert_memory_equal(&info->id.daddr, sa.dst.addr, 4);
	assert_memory_equal(&info->saddr, sa.src.addr, 4);
	assert_int_equal(nlmsg_parse(h, sizeof(*info), tb, XFRMA_MAX, NULL), 0);
	aead = nla_data(tb[XFRMA_ALG_AEAD]);
	assert_string_equal(aead->alg_name, "rfc4106(gcm(aes))");
	assert_int_equal(aead->alg_key_len, 288);
	assert_int_equal(aead->alg_icv_len, 128);
	assert_memory_equal(aead->alg_key, sa.key, 36);
	mark = nla_data(tb[XFRMA_MARK]);
	assert_int_equal(mark->v, 0x000700d0);
	assert_int_equal(mark->m, 0xffff00f0);
	esn = nla_data(tb[XFRMA_REPLAY_ESN_VAL]);
	assert_int_equal(esn->replay_window, 128);
	assert_int_equal(esn->bmp_len, 4);
	assert_int_equal(esn->oseq, 0);
	/* what the kernel dumps has this layout: it parses back to the same state */
	assert_int_equal(mcx_sa_parse(h, 0x6d63, &back), 0);
	assert_true(mcx_sa_equal(&sa, &back));
	assert_int_equal(mcx_sa_parse(h, 7, &back), -ENOENT); /* another reqid: not ours */
	nlmsg_free(msg);

	/* an out state has no mark; a restored one continues its sequence numbers */
	sa.mark = sa.mark_mask = 0;
	sa.initial_seq = ((uint64_t)1 << 32) | 5;
	assert_int_equal(mcx_sa_message(&sa, XFRM_MSG_NEWSA, &msg), 0);
	h = nlmsg_hdr(msg);
	assert_int_equal(nlmsg_parse(h, sizeof(*info), tb, XFRMA_MAX, NULL), 0);
	assert_null(tb[XFRMA_MARK]);
	esn = nla_data(tb[XFRMA_REPLAY_ESN_VAL]);
	assert_int_equal(esn->oseq, 5);
	assert_int_equal(esn->oseq_hi, 1);
	nlmsg_free(msg);

	assert_int_equal(mcx_sa_delete_message(&sa, &msg), 0);
	h = nlmsg_hdr(msg);
	assert_int_equal(h->nlmsg_type, XFRM_MSG_DELSA);
	assert_int_equal(((const struct xfrm_usersa_id *)nlmsg_data(h))->spi, htonl(0x101));
	nlmsg_free(msg);
}

static void test_sp_message_round_trip(void **state)
{
	struct mcx_sp sp, back;
	struct nl_msg *msg;
	const struct xfrm_userpolicy_info *info;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	sp.dir = XFRM_POLICY_OUT;
	sp.dst = fake_prefix("fd00:1:2::/64");
	sp.mark = 0xe0;
	sp.mark_mask = 0xf0;
	sp.priority = 100;
	sp.tmpl_src = fake_ip("fd00:100::1");
	sp.tmpl_dst = fake_ip("fd00:100::2");
	sp.tmpl_spi = 0x102;
	sp.reqid = 0x6d63;
	assert_int_equal(mcx_sp_message(&sp, XFRM_MSG_NEWPOLICY, &msg), 0);
	assert_int_equal(nlmsg_hdr(msg)->nlmsg_type, XFRM_MSG_NEWPOLICY);
	info = nlmsg_data(nlmsg_hdr(msg));
	assert_int_equal(info->dir, XFRM_POLICY_OUT);
	assert_int_equal(info->sel.prefixlen_d, 64);
	assert_int_equal(info->sel.prefixlen_s, 0);
	assert_int_equal(info->action, XFRM_POLICY_ALLOW);
	/* parse what we built: mark value and mask must come back in their places */
	assert_int_equal(mcx_sp_parse(nlmsg_hdr(msg), 0x6d63, &back), 0);
	assert_int_equal(back.mark, 0xe0);
	assert_int_equal(back.mark_mask, 0xf0);
	assert_int_equal(back.tmpl_spi, 0x102);
	assert_true(mcx_sp_equal(&sp, &back));
	assert_int_equal(mcx_sp_parse(nlmsg_hdr(msg), 7, &back), -ENOENT);
	nlmsg_free(msg);
	assert_int_equal(mcx_sp_message(&sp, XFRM_MSG_NEWSA, &msg), -EINVAL);
}

/* Kernel structs with 64-bit counters come 4 bytes past an 8-byte boundary in a dump (after a
 * message whose length is not a multiple of 8) and in every DELSA notification (its
 * XFRMA_SA): the parsers read them there (regressions/xfrm-netlink/notification-delsa and
 * dump-states, found by fuzz-xfrm-netlink under UBSan). */
static void test_parse_4_byte_aligned(void **state)
{
	struct mcx_sa sa = in_state(), back, gone;
	struct xfrm_usersa_id id = { .spi = htonl(0x101), .family = AF_INET,
				     .proto = IPPROTO_ESP };
	struct xfrm_mark mark = { .v = sa.mark, .m = sa.mark_mask };
	struct xfrm_usersa_info info;
	uint64_t block[64], n_packets;
	struct nlmsghdr *h;
	struct nl_msg *msg, *del;

	(void)state;
	assert_int_equal(mcx_sa_message(&sa, XFRM_MSG_NEWSA, &msg), 0);
	h = nlmsg_hdr(msg);
	assert_true(h->nlmsg_len + 4 <= sizeof(block));
	memcpy((uint8_t *)block + 4, h, h->nlmsg_len);
	assert_int_equal(mcx_sa_parse((struct nlmsghdr *)((uint8_t *)block + 4), 0x6d63, &back), 0);
	assert_true(mcx_sa_equal(&sa, &back));

	/* xfrm_notify_sa(): the id, then the state in XFRMA_SA (at 44: 4 past 8), then extras */
	del = nlmsg_alloc_simple(XFRM_MSG_DELSA, 0);
	assert_non_null(del);
	memcpy(&id.daddr, sa.dst.addr, 4);
	memcpy(&info, nlmsg_data(h), sizeof(info));
	info.curlft.packets = 41;
	assert_int_equal(nlmsg_append(del, &id, sizeof(id), NLMSG_ALIGNTO), 0);
	assert_int_equal(nla_put(del, XFRMA_SA, sizeof(info), &info), 0);
	assert_int_equal(nla_put(del, XFRMA_MARK, sizeof(mark), &mark), 0);
	assert_int_equal(mcx_sa_parse_gone(nlmsg_hdr(del), 0x6d63, &gone, &n_packets), 0);
	assert_true(mcx_sa_same_id(&gone, &sa));
	assert_int_equal(n_packets, 41);
	nlmsg_free(del);
	nlmsg_free(msg);
}

/* A hard expiry of the out state info after it sent packets, as the kernel builds it
 * (build_expire(): the state with its counters, then its mark, no replay state). */
static struct nl_msg *hard_expiry(const struct xfrm_usersa_info *info, uint64_t packets)
{
	struct xfrm_user_expire ue;
	struct xfrm_mark no_mark = { 0 };
	struct nl_msg *msg = nlmsg_alloc_simple(XFRM_MSG_EXPIRE, 0);

	assert_non_null(msg);
	memset(&ue, 0, sizeof(ue));
	memcpy(&ue.state, info, sizeof(ue.state));
	ue.state.curlft.packets = packets;
	ue.hard = 1;
	assert_int_equal(nlmsg_append(msg, &ue, sizeof(ue), NLMSG_ALIGNTO), 0);
	assert_int_equal(nla_put(msg, XFRMA_MARK, sizeof(no_mark), &no_mark), 0);
	return msg;
}

/* An out state's counters: a dump's oseq less the packets sent is where it started, and a
 * hard expiry, which the kernel sends without the replay state (build_expire(): the state and
 * its mark), still says how many it sent. */
static void test_parse_out_state_counters(void **state)
{
	struct mcx_sa sa = in_state(), back, gone;
	struct xfrm_usersa_info *info;
	struct nl_msg *msg, *expire;
	uint64_t n_packets;

	(void)state;
	sa.mark = sa.mark_mask = 0;
	sa.initial_seq = ((uint64_t)1 << 32) + 5;
	assert_int_equal(mcx_sa_message(&sa, XFRM_MSG_NEWSA, &msg), 0);
	info = nlmsg_data(nlmsg_hdr(msg));
	info->curlft.packets = 3; /* what a dump of it says after 3 packets, oseq unchanged */
	assert_int_equal(mcx_sa_parse(nlmsg_hdr(msg), 0x6d63, &back), 0);
	assert_int_equal(back.initial_seq, ((uint64_t)1 << 32) + 2);

	expire = hard_expiry(info, 1000);
	assert_int_equal(mcx_sa_parse_gone(nlmsg_hdr(expire), 0x6d63, &gone, &n_packets), 0);
	assert_true(mcx_sa_same_id(&gone, &sa));
	assert_int_equal(n_packets, 1000);
	/* a soft expiry deletes nothing; another reqid is not ours */
	((struct xfrm_user_expire *)nlmsg_data(nlmsg_hdr(expire)))->hard = 0;
	assert_int_equal(mcx_sa_parse_gone(nlmsg_hdr(expire), 0x6d63, &gone, &n_packets), -ENOENT);
	((struct xfrm_user_expire *)nlmsg_data(nlmsg_hdr(expire)))->hard = 1;
	assert_int_equal(mcx_sa_parse_gone(nlmsg_hdr(expire), 7, &gone, &n_packets), -ENOENT);
	nlmsg_free(expire);
	nlmsg_free(msg);
}

/* A policy selector's prefix longer than its addresses, which the kernel refuses, is a
 * malformed message (regressions/xfrm-netlink/policy-prefix-33). */
static void test_sp_parse_prefix_too_long(void **state)
{
	struct mcx_sp sp, back;
	struct nl_msg *msg;
	struct xfrm_userpolicy_info *info;

	(void)state;
	memset(&sp, 0, sizeof(sp));
	sp.dir = XFRM_POLICY_OUT;
	sp.dst = fake_prefix("10.2.0.0/16");
	sp.tmpl_src = fake_ip("192.168.100.1");
	sp.tmpl_dst = fake_ip("192.168.100.2");
	sp.reqid = 0x6d63;
	assert_int_equal(mcx_sp_message(&sp, XFRM_MSG_NEWPOLICY, &msg), 0);
	info = nlmsg_data(nlmsg_hdr(msg));
	info->sel.prefixlen_d = 32;
	assert_int_equal(mcx_sp_parse(nlmsg_hdr(msg), 0x6d63, &back), 0);
	assert_int_equal(back.dst.len, 32);
	info->sel.prefixlen_d = 33;
	assert_int_equal(mcx_sp_parse(nlmsg_hdr(msg), 0x6d63, &back), -EBADMSG);
	nlmsg_free(msg);
}

/* ---- the plugin, against the fake host ---- */

static char key_path[64];

/* The plugin's fake host, keys from a key file (with_file) or from the key Secret. */
static struct fake_host *plugin_up_with(bool with_file)
{
	struct fake_host *fh = fake_host_new();
	int fd;

	snprintf(key_path, sizeof(key_path), "/tmp/test-xfrm-plugin-XXXXXX");
	fd = mkstemp(key_path);
	assert_true(fd >= 0);
	assert_true(write(fd, KEY_LINE, strlen(KEY_LINE)) == (ssize_t)strlen(KEY_LINE));
	close(fd);
	if (with_file)
		fake_host_set_config(fh, "key_file", key_path);
	fake_host_set_config(fh, "key_secret", "meshcrypt-system/meshcrypt-ipsec-keys");
	fake_host_set_config(fh, "rotation_grace", "300s");
	fake_host_set_config(fh, "reqid", "0x6d63");
	sent_clear();
	fail_type = -1;
	dump_error = 0;
	return fh;
}

static struct fake_host *plugin_up(void)
{
	return plugin_up_with(true);
}

static void plugin_down(struct fake_host *fh)
{
	meshcrypt_plugin.stop(fake_host_ctx(fh));
	meshcrypt_plugin.fini(fake_host_ctx(fh));
	fake_host_free(fh);
	unlink(key_path);
	sent_clear();
}

static struct mc_local_state *local_node1(void)
{
	static struct mc_ip addrs[2];
	static struct mc_local_state l;

	addrs[0] = fake_ip("192.168.100.1");
	addrs[1] = fake_ip("fd00:100::1");
	memset(&l, 0, sizeof(l));
	l.name = (char *)"node1";
	l.known = l.participating = true;
	l.addresses = addrs;
	l.n_addresses = 2;
	memcpy(l.boot_id, BOOT1, sizeof(BOOT1));
	l.key_generation = 1;
	return &l;
}

static struct mc_peer_state *peer_node2(void)
{
	static struct mc_ip addrs[2];
	static struct mc_prefix prefixes[2];
	static struct mc_peer_state p;

	addrs[0] = fake_ip("192.168.100.2");
	addrs[1] = fake_ip("fd00:100::2");
	prefixes[0] = fake_prefix("10.1.2.0/24");
	prefixes[1] = fake_prefix("fd00:1:2::/64");
	memset(&p, 0, sizeof(p));
	p.peer_id = 42;
	p.name = (char *)"node2";
	p.present = true;
	p.addresses = addrs;
	p.n_addresses = 2;
	memcpy(p.boot_id, BOOT2, sizeof(BOOT2));
	p.key_generation = 1;
	p.prefixes = prefixes;
	p.n_prefixes = 2;
	p.peer_index = 7;
	return &p;
}

static size_t count_type(int type)
{
	size_t n = 0;

	for (size_t i = 0; i < n_sent; i++)
		n += sent_msg(i)->nlmsg_type == type;
	return n;
}

static void test_plugin_apply_and_idempotence(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_metrics *metrics = fake_host_enable_metrics(fh);
	size_t first_out_policy = 0, last_sa = 0;
	char *text;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	/* before the local node is known a peer waits */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), -EAGAIN);
	assert_int_equal(n_sent, 0);

	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(count_type(XFRM_MSG_NEWPOLICY), 4); /* in + fwd, IPv4 + IPv6 */
	for (size_t i = 0; i < n_sent; i++) {
		const struct xfrm_userpolicy_info *info = nlmsg_data(sent_msg(i));

		assert_true(info->dir == XFRM_POLICY_IN || info->dir == XFRM_POLICY_FWD);
		assert_int_equal(info->sel.prefixlen_d, 0);
	}
	sent_clear();

	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(count_type(XFRM_MSG_NEWSA), 4);
	assert_int_equal(count_type(XFRM_MSG_NEWPOLICY), 2);
	assert_int_equal(n_sent, 6);
	/* in states (marked with the peer index 7) come first, policies after every state */
	assert_int_equal(((const struct xfrm_usersa_info *)nlmsg_data(sent_msg(0)))->id.spi,
			 htonl(0x101));
	for (size_t i = 0; i < n_sent; i++) {
		if (sent_msg(i)->nlmsg_type == XFRM_MSG_NEWSA)
			last_sa = i;
		else if (!first_out_policy)
			first_out_policy = i;
	}
	assert_true(last_sa < first_out_policy);
	{
		struct mcx_sa sa;

		assert_int_equal(mcx_sa_parse(sent_msg(0), 0x6d63, &sa), 0);
		assert_int_equal(sa.mark, 0xd0 | 7u << 16);
		assert_int_equal(sa.mark_mask, 0xffff00f0);
	}
	sent_clear();
	/* /metrics counts what the model holds */
	text = mc_metrics_render(metrics, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "meshcrypt_xfrm_states{direction=\"out\",state=\"active\"} 2\n"));
	assert_non_null(strstr(text, "meshcrypt_xfrm_states{direction=\"in\",state=\"current\"} 2\n"));
	assert_non_null(strstr(text, "meshcrypt_xfrm_states{direction=\"in\",state=\"accepted\"} 0\n"));
	assert_non_null(strstr(text, "meshcrypt_xfrm_policies{direction=\"out\",state=\"active\"} 2\n"));
	assert_non_null(strstr(text, "meshcrypt_xfrm_policies{direction=\"fwd\",state=\"active\"} 2\n"));
	assert_non_null(strstr(text, "meshcrypt_xfrm_policies{direction=\"in\",state=\"unclaimed\"} 0\n"));
	free(text);

	/* the same state again: nothing reaches the kernel */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(n_sent, 0);

	/* a new generation advertised by the peer that we do not hold: still nothing */
	peer_node2()->key_generation = 2;
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(n_sent, 0);

	/* hostile generations, 0 and 2^32-1: said once each, sent with the one held, nothing
	 * changes in the kernel */
	{
		static const uint32_t generations[] = { 0, UINT32_MAX, UINT32_MAX };
		struct mc_peer_state *p;

		for (size_t i = 0; i < 3; i++) {
			fake_host_log_clear(fh);
			p = peer_node2();
			p->key_generation = generations[i];
			assert_int_equal(ops->peer_apply(ctx, p), 0);
			assert_int_equal(n_sent, 0);
			assert_int_equal(fake_host_log_count_matching(fh, "advertises"), i < 2);
		}
		fake_host_log_clear(fh);
		p = peer_node2();
		p->key_generation = 0;
		assert_int_equal(ops->peer_apply(ctx, p), 0);
		assert_non_null(fake_host_log_find(fh, LOG_WARNING,
						   "peer node2 advertises no key generation (0): "
						   "sending with generation 1"));
		p = peer_node2();
		p->key_generation = UINT32_MAX;
		assert_int_equal(ops->peer_apply(ctx, p), 0);
		assert_non_null(fake_host_log_find(fh, LOG_INFO, "advertises key generation "
						   "4294967295, which this node does not hold"));
		assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
		assert_int_equal(n_sent, 0);
	}

	/* the peer leaves: policies first, then out states, then in states */
	{
		struct mc_peer_state *p = peer_node2();

		p->present = false;
		assert_int_equal(ops->peer_apply(ctx, p), 0);
	}
	assert_int_equal(n_sent, 6);
	assert_int_equal(sent_msg(0)->nlmsg_type, XFRM_MSG_DELPOLICY);
	assert_int_equal(sent_msg(1)->nlmsg_type, XFRM_MSG_DELPOLICY);
	for (size_t i = 2; i < 6; i++)
		assert_int_equal(sent_msg(i)->nlmsg_type, XFRM_MSG_DELSA);
	/* an out state (no mark) goes before the in states */
	{
		struct nlattr *tb[XFRMA_MAX + 1];

		assert_int_equal(nlmsg_parse((struct nlmsghdr *)sent_msg(2),
					     sizeof(struct xfrm_usersa_id), tb, XFRMA_MAX, NULL),
				 0);
		assert_null(tb[XFRMA_MARK]);
	}
	plugin_down(fh);
}

static void test_plugin_errors(void **state)
{
	static const int errors[] = { -EEXIST, -ENOMEM, -EPERM };
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;

	(void)state;
	for (size_t e = 0; e < sizeof(errors) / sizeof(errors[0]); e++) {
		struct fake_host *fh = plugin_up();
		struct mc_plugin_ctx *ctx = fake_host_ctx(fh);

		assert_int_equal(meshcrypt_plugin.init(ctx), 0);
		assert_int_equal(meshcrypt_plugin.start(ctx), 0);
		assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
		fail_type = XFRM_MSG_NEWSA;
		fail_error = errors[e];
		assert_int_equal(ops->peer_apply(ctx, peer_node2()), errors[e]);
		/* the failing object is named, its key never shown */
		assert_non_null(fake_host_log_find(fh, LOG_WARNING,
						   "state 192.168.100.2 -> 192.168.100.1 spi 0x101"));
		assert_int_equal(fake_host_log_count_matching(fh, "0001020304"), 0);
		/* nothing after the failed state: no policy points at a missing state */
		assert_int_equal(count_type(XFRM_MSG_NEWPOLICY), 4);
		/* the retry sends the state again and goes on */
		fail_type = -1;
		sent_clear();
		assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
		assert_int_equal(count_type(XFRM_MSG_NEWSA), 4);
		assert_int_equal(count_type(XFRM_MSG_NEWPOLICY), 2);
		plugin_down(fh);
	}
}

static void test_plugin_enoent_on_delete(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_peer_state *p;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	p = peer_node2();
	assert_int_equal(ops->peer_apply(ctx, p), 0);
	sent_clear();
	/* already gone from the kernel: a reconcile signal, not an error */
	fail_type = XFRM_MSG_DELSA;
	fail_error = -ENOENT;
	p->present = false;
	assert_int_equal(ops->peer_apply(ctx, p), 0);
	assert_int_equal(count_type(XFRM_MSG_DELSA), 4);
	sent_clear();
	assert_int_equal(ops->peer_apply(ctx, p), 0);
	assert_int_equal(n_sent, 0);
	plugin_down(fh);
}

static void test_plugin_init_refusals(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);

	(void)state;
	dump_error = -EPERM;
	assert_int_equal(meshcrypt_plugin.init(ctx), -EPERM);
	assert_non_null(fake_host_log_find(fh, LOG_ERR, "needs CAP_NET_ADMIN"));
	meshcrypt_plugin.fini(ctx);
	fake_host_free(fh);

	fh = plugin_up();
	ctx = fake_host_ctx(fh);
	assert_int_equal(chmod(key_path, 0644), 0);
	assert_int_equal(meshcrypt_plugin.init(ctx), -EPERM);
	assert_non_null(fake_host_log_find(fh, LOG_ERR, "mode 0644"));
	plugin_down(fh);
}

/* Keys from the Secret the source reports (ABI 1.1 secret_get / secret_changed). */
static void test_plugin_secret_keys(void **state)
{
	static const char lines[] = "1 rfc4106(gcm(aes)) " KEY36 " 128\n";
	struct fake_host *fh = plugin_up_with(false);
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_key keys[8];
	struct mc_peer_state *p;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	assert_non_null(fake_host_log_find(fh, LOG_INFO,
					   "waiting for the key Secret meshcrypt-system/meshcrypt-ipsec-keys"));
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	sent_clear();
	p = peer_node2();
	assert_int_equal(ops->peer_apply(ctx, p), -EAGAIN); /* no keys yet */
	assert_int_equal(n_sent, 0);

	/* a malformed Secret: refused with the line, no key byte in the log */
	fake_host_set_secret(fh, "meshcrypt-system", "meshcrypt-ipsec-keys", "keys", "1 bad\n", 6);
	assert_int_equal(ops->secret_changed(ctx), -EINVAL);
	assert_non_null(fake_host_log_find(fh, LOG_ERR, "entry keys: line 1"));

	fake_host_set_secret(fh, "meshcrypt-system", "meshcrypt-ipsec-keys", "keys", lines,
			     strlen(lines));
	(void)fake_host_requeued(fh, NULL, 0);
	assert_int_equal(ops->secret_changed(ctx), 0);
	/* the peers that waited are applied again */
	assert_int_equal(fake_host_requeued(fh, keys, 8), 1);
	assert_int_equal(keys[0].type, MC_KEY_PEER);
	assert_int_equal(keys[0].peer_id, 42);
	assert_int_equal(ops->peer_apply(ctx, p), 0);
	assert_int_equal(count_type(XFRM_MSG_NEWSA), 4);
	/* the same Secret again changes nothing */
	assert_int_equal(ops->secret_changed(ctx), 0);
	assert_int_equal(fake_host_requeued(fh, NULL, 0), 0);
	assert_int_equal(fake_host_log_count_matching(fh, "0001020304"), 0);
	plugin_down(fh);
}

/* A restart after a rotation: the older generation's key is still in the file, but its in
 * states were retired; they must not come back (found in the lab). */
static void test_plugin_no_retired_in_states(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_local_state *l = local_node1();
	struct mc_peer_state *p = peer_node2();
	FILE *f = fopen(key_path, "a");

	(void)state;
	assert_non_null(f);
	fputs("2 rfc4106(gcm(aes)) 000102030405060708090a0b0c0d0e0f10111213 128\n", f);
	fclose(f);
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	l->key_generation = 2;
	p->key_generation = 2;
	assert_int_equal(ops->local_apply(ctx, l), 0);
	sent_clear();
	assert_int_equal(ops->peer_apply(ctx, p), 0);
	assert_int_equal(count_type(XFRM_MSG_NEWSA), 4); /* in + out, IPv4 + IPv6, generation 2 */
	for (size_t i = 0; i < n_sent; i++)
		if (sent_msg(i)->nlmsg_type == XFRM_MSG_NEWSA)
			assert_int_equal(((const struct xfrm_usersa_info *)nlmsg_data(sent_msg(i)))->id.spi,
					 htonl(0x102));
	plugin_down(fh);
}

/* The generation is published once its inbound side is installed for every peer, not before. */
static void test_plugin_publishes_inbound(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	const struct mc_peer_state *peers[1] = { peer_node2() };
	struct mc_publication pub;

	(void)state;
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	/* the peers are not all known before the first gc */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(fake_host_published(fh, NULL), 0);
	assert_int_equal(ops->gc(ctx, peers, 1), 0);
	assert_int_equal(fake_host_published(fh, &pub), 1);
	assert_int_equal(pub.inbound_generation, 1);
	/* once per generation */
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(fake_host_published(fh, NULL), 1);
	plugin_down(fh);
}


/* ---- the model: identity index and owner lists, against a plain array ---- */

/* Object i of the test: a state (even i) or a policy (odd i) whose identity differs in one
 * field or another, so that hashes collide in the table's low bits now and then. */
static void model_object(uint32_t i, struct mcx_sa *sa, struct mcx_sp *sp)
{
	memset(sa, 0, sizeof(*sa));
	memset(sp, 0, sizeof(*sp));
	sa->dst = fake_ip(i % 3 ? "10.0.0.1" : "fd00::1");
	sa->dst.addr[sa->dst.family == AF_INET ? 2 : 14] = (uint8_t)(i / 7 >> 8);
	sa->dst.addr[sa->dst.family == AF_INET ? 3 : 15] = (uint8_t)(i / 7);
	sa->spi = 257 + i % 7;
	sa->mark = i % 2 ? 0xd0 | (i % 5) << 16 : 0;
	sa->mark_mask = i % 2 ? 0xffff00f0 : 0;
	sa->key_len = 20;
	memset(sa->key, 0x5a, sizeof(sa->key));
	sp->dir = (uint8_t)(i % 3);
	sp->dst = fake_prefix("10.0.0.0/24");
	sp->dst.ip.addr[1] = (uint8_t)(i / 3 >> 8);
	sp->dst.ip.addr[2] = (uint8_t)(i / 3);
	sp->mark = 0xe0;
	sp->mark_mask = i % 4 ? 0xf0 : 0xff;
}

static size_t owned_count(const struct mcx_model *m, uint32_t owner, bool states)
{
	size_t n = 0;

	if (states)
		for (const struct mcx_held_sa *h = m->owned[owner].sas; h; h = h->own_next)
			n += h->owner == owner;
	else
		for (const struct mcx_held_sp *h = m->owned[owner].sps; h; h = h->own_next)
			n += h->owner == owner;
	return n;
}

static void test_model_index(void **state)
{
	enum { N = 3000 };
	static bool held[N];
	static uint32_t owner_of[N];
	static const uint8_t digest[32];
	struct mcx_model m;
	size_t want_sas = 0, want_sps = 0, per_owner[2][8] = { { 0 } };
	uint64_t rng = 42;

	(void)state;
	memset(held, 0, sizeof(held));
	assert_int_equal(mcx_model_init(&m), 0);
	/* random puts, owner changes and drops; after each step every object is found exactly
	 * when held and the owner lists hold what they should */
	for (int step = 0; step < 20000; step++) {
		uint32_t i, owner;
		struct mcx_sa sa;
		struct mcx_sp sp;

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		i = (uint32_t)(rng >> 33) % N;
		owner = (uint32_t)(rng >> 20) % 8;
		model_object(i, &sa, &sp);
		if (!held[i] || (rng >> 60) < 10) {
			if (i % 2 == 0)
				assert_non_null(mcx_model_sa_put(&m, &sa, digest, owner));
			else
				assert_non_null(mcx_model_sp_put(&m, &sp, owner));
			if (!held[i])
				i % 2 ? want_sps++ : want_sas++;
			else
				per_owner[i % 2][owner_of[i]]--;
			held[i] = true;
			owner_of[i] = owner;
			per_owner[i % 2][owner]++;
		} else {
			if (i % 2 == 0)
				mcx_model_sa_drop(&m, mcx_model_sa_find(&m, &sa));
			else
				mcx_model_sp_drop(&m, mcx_model_sp_find(&m, &sp));
			held[i] = false;
			i % 2 ? want_sps-- : want_sas--;
			per_owner[i % 2][owner_of[i]]--;
		}
		if (step % 1000)
			continue;
		for (uint32_t j = 0; j < N; j++) {
			model_object(j, &sa, &sp);
			if (j % 2 == 0) {
				struct mcx_held_sa *h = mcx_model_sa_find(&m, &sa);

				assert_true(!h == !held[j]);
				if (h) {
					assert_int_equal(h->owner, owner_of[j]);
					assert_int_equal(h->sa.key[0], 0); /* the key is not kept */
				}
			} else {
				struct mcx_held_sp *h = mcx_model_sp_find(&m, &sp);

				assert_true(!h == !held[j]);
				if (h)
					assert_int_equal(h->owner, owner_of[j]);
			}
		}
		for (uint32_t o = 0; o < 8; o++) {
			assert_int_equal(owned_count(&m, o, true), per_owner[0][o]);
			assert_int_equal(owned_count(&m, o, false), per_owner[1][o]);
		}
		assert_int_equal(m.n_sas, want_sas);
		assert_int_equal(m.n_sps, want_sps);
	}
	/* a new owner moves the object between lists */
	for (uint32_t o = 0; o < 8; o++)
		while (m.owned[o].sas)
			mcx_model_sa_set_owner(&m, m.owned[o].sas, MCX_OWNER_NODE);
	assert_int_equal(owned_count(&m, MCX_OWNER_NODE, true), want_sas);
	mcx_model_fini(&m);
	mcx_model_fini(&m); /* a second time is a no-op */
}


/* Starts the plugin and applies node1 and its peer node2. */
static void start_with_node2(struct mc_plugin_ctx *ctx)
{
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;

	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
}

/* The kernel now holds every message sent (the kernel[] a dump reads), and the restarted
 * plugin is to find it there. */
static void kernel_holds_sent(void)
{
	for (size_t i = 0; i < n_sent; i++) {
		kernel[n_kernel].bytes = malloc(sent[i].len);
		assert_non_null(kernel[n_kernel].bytes);
		memcpy(kernel[n_kernel].bytes, sent[i].bytes, sent[i].len);
		kernel[n_kernel++].len = sent[i].len;
	}
}

static void kernel_forget(void)
{
	for (size_t i = 0; i < n_kernel; i++)
		free(kernel[i].bytes);
	n_kernel = 0;
}

/*
 * A restart whose first garbage collection comes before a peer's apply went through (the apply
 * waited for the local node, -EAGAIN, and its retry is still due): the gc must keep what the
 * kernel holds for every present peer, or the retry re-creates it and traffic drops meanwhile.
 */
static void test_plugin_gc_before_first_apply(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	const struct mc_peer_state *peers[1];

	(void)state;
	start_with_node2(ctx);
	kernel_holds_sent();
	assert_int_equal(n_kernel, 10); /* 4 node-wide policies, 4 states, 2 out policies */
	meshcrypt_plugin.stop(ctx);
	meshcrypt_plugin.fini(ctx);
	fake_host_free(fh);
	sent_clear();

	/* restarted: the peer first fails for want of the local node, then gc comes */
	fh = plugin_up();
	ctx = fake_host_ctx(fh);
	assert_int_equal(meshcrypt_plugin.init(ctx), 0);
	assert_int_equal(meshcrypt_plugin.start(ctx), 0);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), -EAGAIN);
	peers[0] = peer_node2();
	assert_int_equal(ops->gc(ctx, peers, 1), 0);
	assert_int_equal(n_sent, 0); /* nothing of node2's removed */
	/* and the applies find everything in place */
	assert_int_equal(ops->local_apply(ctx, local_node1()), 0);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(n_sent, 0);
	plugin_down(fh);
	kernel_forget();
}

/* The kernel's copy of an out state of ours to dst (mark 0), or SIZE_MAX. */
static size_t kernel_out_state(const char *dst)
{
	struct mc_ip want = fake_ip(dst);

	for (size_t i = 0; i < n_kernel; i++) {
		struct mcx_sa sa;
		bool found = kernel[i].bytes &&
			     mcx_sa_parse((const struct nlmsghdr *)kernel[i].bytes, 0x6d63, &sa) == 0 &&
			     !sa.mark_mask && memcmp(&sa.dst, &want, sizeof(want)) == 0;

		explicit_bzero(&sa, sizeof(sa));
		if (found)
			return i;
	}
	return SIZE_MAX;
}

/* Sets what the kernel says of an out state: its ESN oseq and the packets it sent. */
static void kernel_set_counters(size_t i, uint32_t oseq, uint64_t packets)
{
	struct nlmsghdr *h = (struct nlmsghdr *)kernel[i].bytes;
	struct xfrm_usersa_info *info = nlmsg_data(h);
	struct nlattr *tb[XFRMA_MAX + 1];

	assert_int_equal(nlmsg_parse(h, sizeof(*info), tb, XFRMA_MAX, NULL), 0);
	assert_non_null(tb[XFRMA_REPLAY_ESN_VAL]);
	((struct xfrm_replay_state_esn *)nla_data(tb[XFRMA_REPLAY_ESN_VAL]))->oseq = oseq;
	info->curlft.packets = packets;
}

/*
 * An out state that hard-expires behind our back (someone gave it a lifetime) is restored after
 * the last sequence number it sent: the kernel's expiry carries no replay state, only the
 * packets the state sent, and the model knows where the state started, across a restart too
 * (the dump's oseq less its packets). A restart from 1 would have the peer drop every packet
 * as a replay until the counter caught up.
 */
static void test_plugin_expired_out_state_continues(void **state)
{
	struct fake_host *fh = plugin_up();
	struct mc_plugin_ctx *ctx = fake_host_ctx(fh);
	const struct mc_dataplane_ops *ops = meshcrypt_plugin.dataplane;
	struct mc_key requeued[4];
	struct nlattr *tb[XFRMA_MAX + 1];
	const struct xfrm_replay_state_esn *esn;
	struct nl_msg *expire;
	size_t out;

	(void)state;
	start_with_node2(ctx);
	kernel_holds_sent();
	/* the IPv4 out state was restored once at 600 and has sent 400 packets since */
	out = kernel_out_state("192.168.100.2");
	assert_true(out != SIZE_MAX);
	kernel_set_counters(out, 1000, 400);
	plugin_down(fh);

	fh = plugin_up();
	ctx = fake_host_ctx(fh);
	start_with_node2(ctx);
	assert_int_equal(n_sent, 0);

	/* 25 packets later it hard-expires: the kernel deletes it and says so (build_expire) */
	expire = hard_expiry(nlmsg_data((struct nlmsghdr *)kernel[out].bytes), 425);
	notifications[n_notifications] = malloc(nlmsg_hdr(expire)->nlmsg_len);
	assert_non_null(notifications[n_notifications]);
	memcpy(notifications[n_notifications++], nlmsg_hdr(expire), nlmsg_hdr(expire)->nlmsg_len);
	nlmsg_free(expire);
	explicit_bzero(kernel[out].bytes, kernel[out].len);
	free(kernel[out].bytes);
	kernel[out].bytes = NULL;
	kernel[out].len = 0;

	assert_int_equal(fake_host_fire_io(fh, fake_host_io_fd(fh, 0)), 1);
	assert_true(fake_host_fire_timers(fh) >= 1); /* the re-read, 50 ms later */
	assert_int_equal(fake_host_requeued(fh, requeued, 4), 1);
	assert_int_equal(ops->peer_apply(ctx, peer_node2()), 0);
	assert_int_equal(n_sent, 1);
	assert_int_equal(sent_msg(0)->nlmsg_type, XFRM_MSG_NEWSA);
	assert_int_equal(nlmsg_parse((struct nlmsghdr *)sent_msg(0),
				     sizeof(struct xfrm_usersa_info), tb, XFRMA_MAX, NULL), 0);
	esn = nla_data(tb[XFRMA_REPLAY_ESN_VAL]);
	assert_int_equal(esn->oseq, 1025);
	assert_int_equal(esn->oseq_hi, 0);
	assert_non_null(fake_host_log_find(fh, LOG_INFO, "its sequence numbers continued"));
	plugin_down(fh);
	kernel_forget();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_parse),
		cmocka_unit_test(test_keys_refused),
		cmocka_unit_test(test_key_file_mode),
		cmocka_unit_test(test_hkdf_vector),
		cmocka_unit_test(test_model_index),
		cmocka_unit_test(test_sa_message_bytes),
		cmocka_unit_test(test_sp_message_round_trip),
		cmocka_unit_test(test_parse_4_byte_aligned),
		cmocka_unit_test(test_parse_out_state_counters),
		cmocka_unit_test(test_sp_parse_prefix_too_long),
		cmocka_unit_test(test_plugin_apply_and_idempotence),
		cmocka_unit_test(test_plugin_errors),
		cmocka_unit_test(test_plugin_enoent_on_delete),
		cmocka_unit_test(test_plugin_init_refusals),
		cmocka_unit_test(test_plugin_secret_keys),
		cmocka_unit_test(test_plugin_no_retired_in_states),
		cmocka_unit_test(test_plugin_publishes_inbound),
		cmocka_unit_test(test_plugin_gc_before_first_apply),
		cmocka_unit_test(test_plugin_expired_out_state_continues),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
