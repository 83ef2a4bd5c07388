"""On-disk object data for the OSS emulator: streamed writes, CRC64-ECMA, segment reads; one store per emulator.

Object bytes live in *blob* files named by a random id (never by object key), under
``<data_dir>/oss/blobs/<id[:2]>/<id>``. Metadata (which blobs make up an object, sizes,
checksums) lives in the emulator state, so a blob nobody references is never served, and a
reset simply forgets the references. Blobs are immutable once published, with one exception
(an appendable object's last blob, appended in place only while it has a single link), so
copies are hard links and a completed multipart object is just the list of its part blobs.

CRC64 is CRC-64/XZ as OSS sends it in ``x-oss-hash-crc64ecma``, from the emulator's own
:mod:`emulator.oss.crc64`; its ``crc64_combine`` joins the CRCs of two adjacent pieces, so
multipart objects never need re-reading.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from .crc64 import Crc64

CHUNK = 1024 * 1024


class _BlobWriter:
    """Writes chunks to an open file, keeping size, MD5 and CRC-64 as they pass."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.md5, self.crc, self.size = fh, hashlib.md5(), Crc64(), 0
        self.blob = ""

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.md5.update(chunk)
        self.crc.update(chunk)
        self.size += len(chunk)

    def result(self) -> tuple[str, int, bytes, int]:
        return self.blob, self.size, self.md5.digest(), self.crc.value


class BlobStore:
    """Blob files under ``root``. Example::

        store = BlobStore(Path("/tmp/emu/oss"))
        blob, size, md5, crc = await store.write_stream(request.content.iter_chunked(CHUNK))
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def path(self, blob: str) -> Path:
        return self.root / "blobs" / blob[:2] / blob

    @staticmethod
    def new_blob_id() -> str:
        return uuid.uuid4().hex

    def _publish(self, tmp_path: str) -> str:
        blob = self.new_blob_id()
        target = self.path(blob)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, target)
        return blob

    def _temp(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.tmp_dir, prefix="up-")

    @contextlib.contextmanager
    def _new_blob(self) -> Iterator[_BlobWriter]:
        """A blob written through a :class:`_BlobWriter`, published when the block ends; a failure half way
        removes the temporary file and publishes nothing."""
        fd, tmp_path = self._temp()
        try:
            with os.fdopen(fd, "wb") as fh:
                writer = _BlobWriter(fh)
                yield writer
            writer.blob = self._publish(tmp_path)
        except BaseException:
            _unlink(tmp_path)
            raise

    async def write_stream(self, chunks: AsyncIterator[bytes]) -> tuple[str, int, bytes, int]:
        """Write a stream of chunks into a new blob; returns ``(blob, size, md5 digest, crc64)``.

        If the stream fails half way, the temporary file is removed and nothing is published.
        """
        with self._new_blob() as writer:
            async for chunk in chunks:
                writer.write(chunk)
        return writer.result()

    def write_bytes(self, data: bytes) -> str:
        with self._new_blob() as writer:
            writer.write(data)
        return writer.blob

    def copy_range(self, segments: list[list], start: int, end: int) -> tuple[str, int, bytes, int]:
        """New blob holding bytes ``[start, end]`` of the object made of ``segments`` (blocking)."""
        with self._new_blob() as writer:
            for chunk in self.iter_range(segments, start, end):
                writer.write(chunk)
        return writer.result()

    def link(self, blob: str) -> str:
        """A new blob id for the same bytes (a hard link; falls back to a copy)."""
        new = self.new_blob_id()
        target = self.path(new)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(blob), target)
        except OSError:
            fd, tmp_path = self._temp()
            with os.fdopen(fd, "wb") as out, open(self.path(blob), "rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            os.replace(tmp_path, target)
        return new

    def append(self, blob: str, valid_size: int, data_chunks: list[bytes]) -> None:
        """Append to ``blob`` in place after cutting it to ``valid_size`` (caller ensures one link)."""
        with open(self.path(blob), "r+b") as fh:
            fh.truncate(valid_size)
            fh.seek(valid_size)
            for chunk in data_chunks:
                fh.write(chunk)

    def nlink(self, blob: str) -> int:
        try:
            return os.stat(self.path(blob)).st_nlink
        except OSError:
            return 0

    def delete(self, blobs) -> None:
        for blob in blobs:
            _unlink(self.path(blob))

    def iter_range(self, segments: list[list], start: int, end: int):
        """Yield the bytes ``[start, end]`` (inclusive) of the concatenated segments."""
        offset = 0
        for blob, size in segments:
            seg_start, seg_end = offset, offset + size - 1
            offset += size
            if size == 0 or seg_end < start:
                continue
            if seg_start > end:
                break
            lo = max(start, seg_start) - seg_start
            hi = min(end, seg_end) - seg_start
            with open(self.path(blob), "rb") as fh:
                fh.seek(lo)
                remaining = hi - lo + 1
                while remaining > 0:
                    chunk = fh.read(min(CHUNK, remaining))
                    if not chunk:
                        raise OSError(f"blob {blob} is shorter than its metadata says")
                    remaining -= len(chunk)
                    yield chunk


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


_STORES: dict[int, BlobStore] = {}
_TMP_DIRS: list[tempfile.TemporaryDirectory] = []


def store_of(emulator) -> BlobStore:
    """The blob store of ``emulator``: under ``<data_dir>/oss``, or a temporary directory without a data dir."""
    store = _STORES.get(id(emulator))
    if store is None:
        data_dir = emulator.state.data_dir
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="emulator-oss-")
            _TMP_DIRS.append(tmp)
            data_dir = Path(tmp.name)
        store = _STORES[id(emulator)] = BlobStore(Path(data_dir) / "oss")
    return store
