"""CRC-64/ECMA as OSS computes it (``x-oss-hash-crc64ecma``), for the OSS hook. (The emulator computes its own,
with crcmod and a combine of its own, so a bug here cannot hide behind a shared oracle.)

CRC-64/XZ: the ECMA-182 polynomial, reflected, init and xor-out all ones. :func:`crc64` hashes bytes with
crcmod's C extension: a byte-at-a-time table, about 430 MiB/s on one core (2.4 CPU-s per GiB), holding the GIL;
it was most of the archive worker's CPU (bench/README.md). ``fastcrc`` (pinned in requirements.txt; MIT; Rust,
SIMD carry-less multiplication: 20 GB/s here, GIL released) is used instead when it imports and gives the same
values (:data:`BACKEND`); crcmod stays the fallback and the reference of the tests. :func:`crc64_combine` joins the CRCs of
two adjacent pieces without re-reading them (zlib's GF(2) matrix method), so a multipart object's CRC comes from
its parts': its operators are built once per process, after which a combine takes microseconds (the OSS SDK's
``Crc64.combine`` rebuilds them on every call: about 15 ms).

Example::

    >>> a, b = b"hello, ", b"world"
    >>> crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)
    True
"""

from __future__ import annotations

import functools
import threading

import crcmod

_POLY = 0x142F0E1EBA9EA3693  # ECMA-182, with the x**64 term crcmod wants
_REV_POLY = 0xC96C5795D7870F42  # the same polynomial, reflected, without x**64
_XOR_OUT = 0xFFFFFFFFFFFFFFFF

try:  # the C extension is ~100x faster than crcmod's pure-Python fallback
    import crcmod._crcfunext  # noqa: F401

    CRC_C_EXTENSION = True
except ImportError:  # pragma: no cover
    CRC_C_EXTENSION = False

_crc_fun = crcmod.mkCrcFun(_POLY, initCrc=0, xorOut=_XOR_OUT, rev=True)
BACKEND = "crcmod"
try:  # ~50x crcmod's C extension; both take (data, previous crc): used only if it gives the same values
    from fastcrc import crc64 as _fastcrc64

    if _fastcrc64.xz(b"6789", _fastcrc64.xz(b"12345")) == _crc_fun(b"123456789") == 0x995DC9BBDF1939FA:
        _crc_fun, BACKEND = _fastcrc64.xz, "fastcrc"
except (ImportError, AttributeError, TypeError):
    pass

_BUILD_LOCK = threading.Lock()


def crc64(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/ECMA of ``data`` (bytes, bytearray or memoryview), continuing from ``crc`` (the bytes before it)."""
    return _crc_fun(data, crc)


class Crc64:
    """An incremental CRC-64/ECMA: ``update(data)`` as the bytes pass, the result in ``crcValue`` (crcmod's
    names)."""

    __slots__ = ("crcValue",)

    def __init__(self) -> None:
        self.crcValue = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.crcValue = _crc_fun(data, self.crcValue)


def new_crc() -> Crc64:
    """An incremental CRC-64/ECMA (``update(data)``, ``crcValue``)."""
    return Crc64()


def _gf2_times(mat: tuple[int, ...], vec: int) -> int:
    """The 64x64 GF(2) matrix ``mat`` (one column per bit) times the vector ``vec``."""
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_gf2_times(mat, mat[n]) for n in range(64))


def _zero_operators() -> tuple[tuple[int, ...], ...]:
    """``ops[k]`` applies 2**k zero bytes to a CRC register, built by the first caller while the others wait
    (backups streamed side by side finish together: each built its own, 25 ms of CPU apiece)."""
    with _BUILD_LOCK:
        return _build_zero_operators()


@functools.cache
def _build_zero_operators() -> tuple[tuple[int, ...], ...]:
    odd = (_REV_POLY, *(1 << (n - 1) for n in range(1, 64)))  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    ops, current = [], _gf2_square(odd)  # one zero byte
    for _ in range(64):
        ops.append(current)
        current = _gf2_square(current)
    return tuple(ops)


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-64 of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``."""
    if len2 <= 0:
        return crc1
    ops, k = _zero_operators(), 0
    while len2:
        if len2 & 1:
            crc1 = _gf2_times(ops[k], crc1)
        len2 >>= 1
        k += 1
    return crc1 ^ crc2


__all__ = ["BACKEND", "CRC_C_EXTENSION", "Crc64", "crc64", "crc64_combine", "new_crc"]
