"""aliyun_ops.logic.crc64: the CRC-64/ECMA of the OSS hook, checked against crcmod and the SDK."""

from __future__ import annotations

import functools

from alibabacloud_oss_v2.crc import Crc64
from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_ops.logic.crc64 import CRC_C_EXTENSION, crc64, crc64_combine, new_crc


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048), st.binary(max_size=2048))
def test_combine_of_two_pieces_is_the_crc_of_both(a, b):
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=512), max_size=12))
def test_combining_parts_in_order_gives_the_whole_object(parts):
    whole = functools.reduce(lambda crc, part: crc64_combine(crc, crc64(part), len(part)), parts, 0)
    assert whole == crc64(b"".join(parts))


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=4096))
def test_agrees_with_the_oss_sdk_and_takes_any_buffer(data, cut):
    sdk = Crc64(0)
    sdk.update(data)
    assert crc64(data) == crc64(bytearray(data)) == crc64(memoryview(data)) == sdk.sum64()
    head, tail = data[:cut], data[cut:]
    assert crc64(tail, crc64(head)) == crc64(data)
    incremental = new_crc()
    incremental.update(head)
    incremental.update(tail)
    assert incremental.crcValue == crc64(data)


def test_known_values_and_large_lengths():
    assert crc64(b"") == 0
    assert crc64(b"123456789") == 0x995DC9BBDF1939FA  # the CRC-64/XZ check value
    assert crc64_combine(7, 0, 0) == 7
    block = bytes(range(256)) * 4096  # 1 MiB: the length's high bits use operators the small cases never reach
    assert crc64_combine(crc64(b"x"), crc64(block), len(block)) == crc64(b"x" + block)
    assert CRC_C_EXTENSION


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=0, max_value=4096))
def test_fastcrc_gives_crcmods_values_piece_by_piece(data, cut):
    """The fast backend is a drop-in: the same CRC of any bytes, continued from any earlier CRC."""
    import crcmod
    from fastcrc import crc64 as fast

    reference = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
    cut = min(cut, len(data))
    assert fast.xz(data[cut:], fast.xz(data[:cut])) == reference(data[cut:], reference(data[:cut])) == reference(data)


def test_the_fast_backend_is_the_one_in_use():
    from aliyun_ops.logic import crc64 as module

    assert module.BACKEND == "fastcrc", "fastcrc is pinned in requirements.txt: it should import here"
