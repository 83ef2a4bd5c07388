"""CRC-64/ECMA-182 as OSS sends it in ``x-oss-hash-crc64ecma``: the emulator's own, shared with nothing of the product.

The variant is CRC-64/XZ: the ECMA-182 polynomial ``0x42F0E1EBA9EA3693``, reflected, register initialised to all
ones and the result XORed with all ones (``crc64(b"123456789") == 0x995DC9BBDF1939FA``). Bytes are hashed by
``crcmod`` (its C extension: a byte-at-a-time table, about 400 MB/s on one core, holding the GIL); the product's
OSS hook uses ``fastcrc``, so the emulator is an independent oracle of the CRC its clients compute.

:func:`crc64_combine` joins the CRCs of two adjacent pieces without their bytes (multipart completion, appends):
``crc(A + B) = crc(A) * x**(8 * len(B)) + crc(B)`` over GF(2) modulo the polynomial (the all-ones init and xor-out
cancel), with ``x**(8n)`` found by square-and-multiply from a table of ``x**(2**k)``: the polynomial method of
zlib 1.2.12's ``crc32_combine``, not the 64x64 matrix method of older zlib (which the product and the OSS SDK use).

Example::

    >>> a, b = b"hello, ", b"world"
    >>> crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    True
"""

from __future__ import annotations

import crcmod

POLY = 0x142F0E1EBA9EA3693  # ECMA-182 with its x**64 term, as crcmod takes it
REFLECTED = 0xC96C5795D7870F42  # the same polynomial bit-reversed, without x**64: bit 63 is x**0
XOR_OUT = 0xFFFFFFFFFFFFFFFF
_X0 = 1 << 63  # the polynomial 1 in the reflected representation

try:  # crcmod's pure-Python fallback is about 100 times slower
    import crcmod._crcfunext  # noqa: F401

    C_EXTENSION = True
except ImportError:  # pragma: no cover
    C_EXTENSION = False

# crcmod's initCrc is the register's start XORed with xorOut: 0 here means a register of all ones.
_crc = crcmod.mkCrcFun(POLY, initCrc=0, xorOut=XOR_OUT, rev=True)


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """The CRC-64/ECMA of ``data``, continuing from ``crc`` (the CRC of the bytes before it; 0 for none)."""
    return _crc(data, crc)


class Crc64:
    """An incremental CRC-64/ECMA: :meth:`update` as the bytes pass, the result in :attr:`value`."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = _crc(data, self.value)


def _multiply(a: int, b: int) -> int:
    """``a * b`` modulo the polynomial, both in the reflected representation (bit 63 is ``x**0``)."""
    product, bit = 0, _X0
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ REFLECTED if b & 1 else b >> 1  # b * x
    return product


def _powers() -> tuple[int, ...]:
    """``x**(2**k)`` modulo the polynomial for k = 0..66: enough for lengths below ``2**64`` bytes."""
    table, p = [], _X0 >> 1  # x**1
    for _ in range(67):
        table.append(p)
        p = _multiply(p, p)
    return tuple(table)


_X_POW_2K = _powers()


def _x_pow_bytes(n: int) -> int:
    """``x**(8 * n)`` modulo the polynomial: the operator of ``n`` zero bytes."""
    p, k = _X0, 3  # 8 * n = n * 2**3
    while n:
        if n & 1:
            p = _multiply(_X_POW_2K[k], p)
        n >>= 1
        k += 1
    return p


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-64 of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    if len2 <= 0:
        return crc1
    if len2 >= 1 << 64:
        raise ValueError(f"length {len2} is not below 2**64")
    return _multiply(_x_pow_bytes(len2), crc1) ^ crc2


__all__ = ["C_EXTENSION", "Crc64", "crc64", "crc64_combine"]
