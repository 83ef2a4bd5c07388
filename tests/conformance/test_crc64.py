"""The emulator's own CRC-64/ECMA (emulator/oss/crc64.py) against known vectors, a bit-at-a-time reference written
here, the OSS SDK's ``Crc64`` (what the SDK checks ``x-oss-hash-crc64ecma`` with), and end to end: objects built
by PutObject, multipart (parts of odd sizes, UploadPartCopy ranges), AppendObject and CopyObject carry the CRC the
SDK computes over the bytes it sent or read."""

from __future__ import annotations

import os
import random

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_oss_v2.crc import Crc64 as SdkCrc64

from emulator.oss.crc64 import C_EXTENSION, Crc64, crc64, crc64_combine

BUCKET = "crc-bkt"
_REFLECTED = 0xC96C5795D7870F42


def reference_crc64(data: bytes) -> int:
    """CRC-64/XZ one bit at a time, straight from its definition (reflected ECMA-182, init and xor-out all ones)."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ _REFLECTED if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFFFFFFFFFF


def sdk_crc64(data: bytes) -> int:
    crc = SdkCrc64(0)
    crc.update(data)
    return crc.sum64()


# -- the module ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), [
    (b"", 0),
    (b"123456789", 0x995DC9BBDF1939FA),  # the CRC-64/XZ check value (reveng catalogue)
    (b"a", reference_crc64(b"a")),
    (bytes(range(256)) * 3, reference_crc64(bytes(range(256)) * 3)),
])
def test_known_vectors(data, expected):
    assert crc64(data) == expected == reference_crc64(data) == sdk_crc64(data)


def test_uses_crcmod_c_extension():
    """The emulator hashes every uploaded byte: crcmod's pure-Python fallback would make OSS ~100 times slower."""
    assert C_EXTENSION


def test_incremental_and_continued_equal_one_pass():
    rng = random.Random(7)
    data = rng.randbytes(10_000)
    cuts = sorted(rng.sample(range(len(data)), 20))
    inc, crc = Crc64(), 0
    for lo, hi in zip([0, *cuts], [*cuts, len(data)], strict=True):
        inc.update(memoryview(data)[lo:hi])
        crc = crc64(data[lo:hi], crc)
    assert inc.value == crc == crc64(data) == reference_crc64(data)


def test_combine_matches_concatenation_and_the_sdk():
    rng = random.Random(11)
    for _ in range(200):
        a, b = rng.randbytes(rng.randint(0, 400)), rng.randbytes(rng.randint(0, 400))
        assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b) == sdk_crc64(a + b)
    # lengths far beyond what the test could hash: the SDK's matrix method is the oracle
    for n in (1, 8, 100 * 1024, 5 * 2**30, 5 * 2**30 + 1, 2**40 + 12345, 2**64 - 1):
        c1, c2 = rng.getrandbits(64), rng.getrandbits(64)
        assert crc64_combine(c1, c2, n) == SdkCrc64.combine(c1, c2, n), n
    assert crc64_combine(12345, 0, 0) == 12345
    with pytest.raises(ValueError):
        crc64_combine(1, 2, 2**64)


def test_combine_of_zero_runs():
    """``n`` zero bytes after ``A``: the operator the combine is built from."""
    for n in (1, 7, 64, 1000, 4096 + 3):
        a = b"prefix"
        assert crc64_combine(crc64(a), crc64(bytes(n)), n) == crc64(a + bytes(n))


# -- end to end, through the SDK (its CRC checks on) ------------------------------------------------
@pytest.fixture
def client(oss_client):
    c = oss_client()
    c.put_bucket(oss.PutBucketRequest(bucket=BUCKET))
    return c


def test_put_and_get_carry_the_sdk_crc(client):
    body = os.urandom(3 * 1024 * 1024 + 17)  # several 1 MiB chunks of the emulator's writer
    put = client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="one", body=body))  # the SDK checks the header
    assert int(put.hash_crc64) == sdk_crc64(body)
    got = client.get_object(oss.GetObjectRequest(bucket=BUCKET, key="one"))
    assert got.body.read() == body and int(got.hash_crc64) == sdk_crc64(body)


def test_multipart_crc_is_the_combine_of_odd_parts(client):
    """Parts of different sizes, one uploaded twice (the second wins), one copied from a range of another object:
    CompleteMultipartUpload answers the CRC of the whole, which the SDK computes over the bytes."""
    rng = random.Random(3)
    source = rng.randbytes(700_001)
    client.put_object(oss.PutObjectRequest(bucket=BUCKET, key="src", body=source))
    up = client.initiate_multipart_upload(oss.InitiateMultipartUploadRequest(bucket=BUCKET, key="mp"))
    pieces = [rng.randbytes(100 * 1024 + 1), rng.randbytes(250_003), source[12_345:412_345], rng.randbytes(5)]
    parts = []
    for number, data in enumerate(pieces, 1):
        if number == 3:
            res = client.upload_part_copy(oss.UploadPartCopyRequest(
                bucket=BUCKET, key="mp", upload_id=up.upload_id, part_number=number, source_key="src",
                source_range=f"bytes=12345-{412_345 - 1}"))
            assert int(res.headers["x-oss-hash-crc64ecma"]) == sdk_crc64(data)
        else:
            if number == 2:  # a first try with other bytes, replaced
                client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="mp", upload_id=up.upload_id,
                                                         part_number=number, body=b"x" * 200_000))
            res = client.upload_part(oss.UploadPartRequest(bucket=BUCKET, key="mp", upload_id=up.upload_id,
                                                           part_number=number, body=data))
            assert int(res.hash_crc64) == sdk_crc64(data)
        parts.append(oss.UploadPart(part_number=number, etag=res.etag))
    done = client.complete_multipart_upload(oss.CompleteMultipartUploadRequest(
        bucket=BUCKET, key="mp", upload_id=up.upload_id,
        complete_multipart_upload=oss.CompleteMultipartUpload(parts=parts)))
    whole = b"".join(pieces)
    assert int(done.hash_crc64) == sdk_crc64(whole)
    head = client.head_object(oss.HeadObjectRequest(bucket=BUCKET, key="mp"))
    assert int(head.hash_crc64) == sdk_crc64(whole) and head.content_length == len(whole)
    copy = client.copy_object(oss.CopyObjectRequest(bucket=BUCKET, key="mp-copy", source_key="mp"))
    assert int(copy.hash_crc64) == sdk_crc64(whole)


def test_uploader_checks_the_combined_crc(client, tmp_path):
    """The SDK's uploader combines the parts' CRCs itself and compares with the completed object's."""
    data = os.urandom(3 * 1024 * 1024 + 333)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    uploader = client.uploader(part_size=1024 * 1024, parallel_num=2)
    res = uploader.upload_file(oss.PutObjectRequest(bucket=BUCKET, key="up"), filepath=str(src))
    assert int(res.hash_crc64) == sdk_crc64(data) and res.etag.endswith('-4"')


def test_appends_combine(client):
    rng = random.Random(5)
    chunks = [rng.randbytes(n) for n in (1, 0, 4096, 99_999, 3)]
    position, crc = 0, None
    for i, chunk in enumerate(chunks):
        res = client.append_object(oss.AppendObjectRequest(bucket=BUCKET, key="app", position=position, body=chunk,
                                                           init_hash_crc64=crc))
        position, crc = res.next_position, res.hash_crc64
        assert int(crc) == sdk_crc64(b"".join(chunks[:i + 1]))
    assert position == sum(map(len, chunks))
