#!/usr/bin/python3
"""The per-pair IPsec key of DESIGN.md §6, computed independently of meshcrypt (RFC 5869 with
Python's hmac), for tests that compare it with what the kernel holds.

    hkdf.py KEYFILE GENERATION SRC_IP DST_IP SRC_BOOT_ID DST_BOOT_ID   -> 0x<hex key+salt>
"""
import hashlib
import hmac
import ipaddress
import sys


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def mapped(ip: str) -> bytes:
    a = ipaddress.ip_address(ip)
    return (b"\0" * 10 + b"\xff\xff" + a.packed) if a.version == 4 else a.packed


def main() -> None:
    keyfile, gen, src, dst, src_boot, dst_boot = sys.argv[1:7]
    ikm = None
    for line in open(keyfile, encoding="ascii"):
        words = line.split()
        if len(words) == 4 and words[0] == gen:
            ikm = bytes.fromhex(words[2].removeprefix("0x"))
    if ikm is None:
        sys.exit(f"no generation {gen} in {keyfile}")
    info = mapped(src) + mapped(dst) + src_boot.encode() + dst_boot.encode() + int(gen).to_bytes(4, "big")
    print("0x" + hkdf_sha256(ikm, b"meshcrypt-ipsec-v1", info, len(ikm)).hex())


main()
