#!/usr/bin/python3
"""Sends one UDP datagram with a forged source address (raw socket, IP_HDRINCL for IPv4):

    spoof.py SRC DST PORT PAYLOAD

For tests of `inbound = require`: plaintext that claims to come from a managed remote pod.
"""
import ipaddress
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main() -> None:
    src, dst, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode()
    s_ip, d_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    udp_len = 8 + len(payload)
    if s_ip.version == 4:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!BBH", 0, 17, udp_len)
    else:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!I3xB", udp_len, 17)
    udp = struct.pack("!HHHH", 40000, port, udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    if s_ip.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, s_ip.packed, d_ip.packed)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        sock.sendto(ip + udp, (dst, 0))
    else:
        # IPv6 raw sockets take no header: bind the forged source (IPV6_FREEBIND allows it).
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
        sock.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
        sock.bind((src, 0))
        sock.sendto(udp, (dst, 0))


main()
