#!/bin/bash
# The lab's self-check: proves, before and independently of any meshcrypt backend, that the lab
# can tell encrypted from plaintext traffic and see the kernel reject packets.
#
# On a 3-node topology it installs by hand the IPsec objects of DESIGN.md §6 (as in
# shared/reference/xfrm-objects.sh and xfrm-objects-ipv6.sh), with tc flower + skbedit standing in
# for the eBPF programs, and asserts:
#   1. managed pods reach each other (ICMP, TCP, both ways, IPv4 and IPv6) and the wire carries
#      only ESP between them, the payload marker never in the clear;
#   2. an unmanaged pod (the istiod case) and managed pods on other nodes reach each other; its
#      traffic is plaintext on the wire and no xfrm error counter moves;
#   3. with a kmesh-style fwd policy over node2's whole pod CIDR, the plaintext replies of an
#      unmanaged pod on node1 to a managed pod on node2 are dropped: XfrmInTmplMismatch grows.
# Needs ESP and AES-GCM: runs in the lab VM (meson test --suite lab), skips elsewhere.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

REQID=0x6d63
SPI=0x101 # spi(generation 1) = 256 + 1
ROLE_MASK=0xf0
ENCRYPT_MARK=0xe0
DECRYPT_MARK=0xd0
SA_MARK_MASK=0xffff00f0 # role bits | peer index

# 36 random bytes (AES-256 key + 4-byte salt) per directed node pair, from one read.
declare -A KEY=()
make_keys() {
	local hex src dst n=0
	hex=$(od -An -v -tx1 -N $((36 * ${#LAB_NODES[@]} * ${#LAB_NODES[@]})) /dev/urandom | tr -d ' \n')
	for src in "${LAB_NODES[@]}"; do
		for dst in "${LAB_NODES[@]}"; do
			KEY[$src.$dst]=0x${hex:n * 72:72}
			n=$((n + 1))
		done
	done
}

# The peer index of DESIGN.md §4; here simply the node's number.
peer_mark() {
	printf '0x%x' $((DECRYPT_MARK | ${1#node} << 16))
}

# The xfrm objects one node holds, for one address family (LAB_IP4/LAB_CIDR4 or LAB_IP6/...).
xfrm_batch() {
	local node=$1 fam=$2 any dir peer local_ip peer_ip
	local -n ip_of=LAB_IP$fam cidr_of=LAB_CIDR$fam
	if [[ $fam == 4 ]]; then any=0.0.0.0; else any=::; fi
	local_ip=${ip_of[$node]}
	# Once per node: decrypted traffic (role 0xd0) from any peer, wildcard-source template.
	for dir in in fwd; do
		echo "xfrm policy add src $any/0 dst $any/0 dir $dir mark $DECRYPT_MARK mask $ROLE_MASK" \
			"tmpl src $any dst $local_ip proto esp reqid $REQID mode tunnel"
	done
	for peer in "${LAB_NODES[@]}"; do
		[[ $peer == "$node" ]] && continue
		peer_ip=${ip_of[$peer]}
		echo "xfrm state add src $local_ip dst $peer_ip proto esp spi $SPI reqid $REQID mode tunnel" \
			"replay-window 128 flag esn aead rfc4106(gcm(aes)) ${KEY[$node.$peer]} 128"
		# The in state is keyed by the peer index in the mark, so peers never collide on (dst, spi).
		echo "xfrm state add src $peer_ip dst $local_ip proto esp spi $SPI reqid $REQID mode tunnel" \
			"replay-window 128 flag esn aead rfc4106(gcm(aes)) ${KEY[$peer.$node]} 128" \
			"mark $(peer_mark "$peer") mask $SA_MARK_MASK"
		# One out policy per peer pod CIDR, for traffic from managed local pods.
		echo "xfrm policy add src $any/0 dst ${cidr_of[$peer]} dir out mark $ENCRYPT_MARK mask $ROLE_MASK" \
			"priority 100 tmpl src $local_ip dst $peer_ip proto esp spi $SPI reqid $REQID mode tunnel"
	done
}

# tc stand-ins for the eBPF programs (DESIGN.md §5). flower reads ip_proto as hex: ESP = 0x32.
tc_batch() {
	local node=$1 peer pod
	echo "qdisc add dev ${LAB_UPLINK[$node]} clsact"
	for peer in "${LAB_NODES[@]}"; do
		[[ $peer == "$node" ]] && continue
		# node ingress: ESP from peer P -> role 0xd0 | index(P), the inbound SA's mark
		echo "filter add dev ${LAB_UPLINK[$node]} ingress protocol ip pref 10 flower ip_proto 0x32" \
			"src_ip ${LAB_IP4[$peer]} action skbedit mark $(peer_mark "$peer")/$SA_MARK_MASK"
		echo "filter add dev ${LAB_UPLINK[$node]} ingress protocol ipv6 pref 11 flower ip_proto 0x32" \
			"src_ip ${LAB_IP6[$peer]} action skbedit mark $(peer_mark "$peer")/$SA_MARK_MASK"
	done
	for pod in "${LAB_PODS[@]}"; do
		[[ ${LAB_NODE_OF[$pod]} == "$node" && ${LAB_MANAGED[$pod]} == 1 ]] || continue
		# pod ingress: traffic from a managed local pod -> role 0xe0
		echo "qdisc add dev ${LAB_HOSTIF[$pod]} clsact"
		echo "filter add dev ${LAB_HOSTIF[$pod]} ingress protocol ip pref 10 flower" \
			"src_ip ${LAB_IP4[$pod]} action skbedit mark $ENCRYPT_MARK/$ROLE_MASK"
		echo "filter add dev ${LAB_HOSTIF[$pod]} ingress protocol ipv6 pref 11 flower" \
			"src_ip ${LAB_IP6[$pod]} action skbedit mark $ENCRYPT_MARK/$ROLE_MASK"
	done
}

install_ipsec() {
	local node
	make_keys
	for node in "${LAB_NODES[@]}"; do
		{ xfrm_batch "$node" 4; xfrm_batch "$node" 6; } | ip -n "${LAB_NS[$node]}" -b -
		tc_batch "$node" | tc -n "${LAB_NS[$node]}" -b -
	done
	lab_log "installed $(lab_xfrm_count node1 state) SAs and $(lab_xfrm_count node1 policy) policies per node"
}

# The kmesh bug: an in/fwd policy whose selector is the node's whole pod CIDR, with no mark, so it
# also demands ESP from plaintext that unmanaged pods legitimately send.
install_kmesh_policy() {
	local node=$1
	{
		echo "xfrm policy add src 0.0.0.0/0 dst ${LAB_CIDR4[$node]} dir fwd" \
			"tmpl src 0.0.0.0 dst ${LAB_IP4[$node]} proto esp reqid $REQID mode tunnel"
		echo "xfrm policy add src ::/0 dst ${LAB_CIDR6[$node]} dir fwd" \
			"tmpl src :: dst ${LAB_IP6[$node]} proto esp reqid $REQID mode tunnel"
	} | ip -n "${LAB_NS[$node]}" -b -
}

pods_where() {
	local want=$1 pod
	for pod in "${LAB_PODS[@]}"; do
		[[ ${LAB_MANAGED[$pod]} == "$want" ]] && echo "$pod"
	done
	return 0
}

check_managed_pairs_encrypted() {
	local -a managed
	local marker i j
	mapfile -t managed < <(pods_where 1)
	marker=$(lab_marker managed)
	lab_log "1. managed pods: encrypted"
	lab_capture_start managed
	for ((i = 0; i < ${#managed[@]}; i++)); do
		for ((j = i + 1; j < ${#managed[@]}; j++)); do
			lab_assert_reach "${managed[i]}" "${managed[j]}" "$marker"
		done
	done
	lab_capture_stop managed
	for ((i = 0; i < ${#managed[@]}; i++)); do
		for ((j = i + 1; j < ${#managed[@]}; j++)); do
			lab_assert_only_esp "$(lab_pcap managed)" "${managed[i]}" "${managed[j]}"
		done
	done
	lab_assert_marker_absent "$(lab_pcap managed)" "$marker"
}

check_unmanaged_plaintext() {
	local -a managed unmanaged
	local marker u a node
	mapfile -t managed < <(pods_where 1)
	mapfile -t unmanaged < <(pods_where 0)
	marker=$(lab_marker unmanaged)
	lab_log "2. unmanaged pods <-> managed pods on other nodes: plaintext, no xfrm errors"
	for node in "${LAB_NODES[@]}"; do
		lab_xfrm_snapshot "$node"
	done
	lab_capture_start unmanaged
	for u in "${unmanaged[@]}"; do
		for a in "${managed[@]}"; do
			[[ ${LAB_NODE_OF[$u]} == "${LAB_NODE_OF[$a]}" ]] || lab_assert_reach "$u" "$a" "$marker"
		done
	done
	lab_capture_stop unmanaged
	for u in "${unmanaged[@]}"; do
		for a in "${managed[@]}"; do
			[[ ${LAB_NODE_OF[$u]} == "${LAB_NODE_OF[$a]}" ]] || lab_assert_plaintext "$(lab_pcap unmanaged)" "$u" "$a"
		done
	done
	lab_assert_marker_seen "$(lab_pcap unmanaged)" "$marker"
	for node in "${LAB_NODES[@]}"; do
		lab_assert_xfrm_unchanged "$node"
	done
}

# node1-u is the istiod of the story, node2-a a managed workload calling it: the request leaves
# node2 encrypted, the reply comes back in plaintext and meets node2's too-broad fwd policy.
check_kmesh_policy_drops_replies() {
	local marker f
	marker=$(lab_marker kmesh)
	lab_log "3. kmesh-style fwd policy over node2's pod CIDRs: unmanaged replies dropped"
	install_kmesh_policy node2
	lab_xfrm_snapshot node2
	for f in 4 6; do
		lab_assert_no_reach node2-a node1-u "$f" "$marker"
	done
	lab_assert_xfrm_increased node2 XfrmInTmplMismatch
}

main() {
	local node
	lab_require_root
	lab_require_cmds tcpdump busybox tc timeout
	lab_require_kernel veth bridge clsact esp
	lab_up --nodes 3 --pods "a:managed u:unmanaged"
	install_ipsec
	check_managed_pairs_encrypted
	check_unmanaged_plaintext
	check_kmesh_policy_drops_replies
	if ((LAB_FAILURES)); then
		for node in "${LAB_NODES[@]}"; do
			lab_xfrm_list "$node"
		done
	fi
	lab_finish
}

main "$@"
