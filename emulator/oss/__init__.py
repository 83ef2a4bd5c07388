"""OSS REST API with on-disk, streamed object data.

Path-style addressing (``/bucket/key``), as ``alibabacloud_oss_v2`` uses with an IP endpoint or
``use_path_style=True``. Requests are verified with ``OSS4-HMAC-SHA256`` (:mod:`emulator.oss.auth`);
the signing scope's region selects the buckets: a bucket lives in the region it was created in,
and using it through another region's scope answers 403 ``AccessDenied`` with the bucket's
endpoint, as OSS does for a wrong-region endpoint.

State tables (plain data):

* ``oss.buckets``  name -> {name, region, acl, storage_class, created, lifecycle?}; ``lifecycle`` (set by
  PutBucketLifecycle) is the list of rules, each a dict keyed by the XML element names (``ID``,
  ``Prefix``, ``Status``, ``Transition``: [{``Days``, ``StorageClass``}], ``Expiration``: {``Days``}...)
* ``oss.objects``  "bucket/key" -> {bucket, key, segments: [[blob, size], ...], size, etag, crc,
  content_type, meta, headers, last_modified, storage_class, type}
* ``oss.uploads``  upload id -> {bucket, key, initiated, content_type, meta, headers, storage_class,
  parts: {number: {blob, size, etag, md5, crc, last_modified}}}

Object bytes live in blob files (:mod:`emulator.oss.store`) named by random ids, written to a
temporary file and renamed, so an interrupted upload never becomes visible.

Calls are recorded (and faults matched) as ``oss:<Operation>`` (``oss:PutObject``,
``oss:UploadPart``, ``oss:GetObject``...); permissions use RAM action names (UploadPart needs
``oss:PutObject``, HeadObject needs ``oss:GetObject``, ...).

Limits checked before a body is read (by ``Content-Length``; a chunked body is cut off when it passes the
limit): uploads (PutObject, UploadPart, AppendObject) at most 5 GiB (``EntityTooLarge``), XML bodies
(PutBucket, PutBucketLifecycle, CompleteMultipartUpload, DeleteMultipleObjects) at most 2 MiB
(``MalformedXML``). An anonymous request is refused (``AccessDenied``) before its body is read: anonymous
callers may read public-read(-write) buckets and write objects to public-read-write ones, nothing else
(no PutBucket, no bucket configuration).

Bucket lifecycle rules are validated and stored (Get/Put/DeleteBucketLifecycle) but never run:
no object changes storage class or expires. The fault kind ``corrupt`` (:mod:`emulator.faults`)
flips the first byte of an upload's body as it is received.

Modules: :mod:`~emulator.oss.pipeline` takes a request through the server's one pipeline
(:meth:`emulator.server.Emulator.serve`, as RPC calls go), with routing from :mod:`~emulator.oss.routing` and
signatures from :mod:`~emulator.oss.auth`; the handlers, one module per resource, register with
:func:`~emulator.oss.routing.operation`: :mod:`~emulator.oss.buckets`, :mod:`~emulator.oss.lifecycle`,
:mod:`~emulator.oss.listing`, :mod:`~emulator.oss.objects`, :mod:`~emulator.oss.multipart`; they share
:mod:`~emulator.oss.common` (state tables, bucket access, request bodies), :mod:`~emulator.oss.context` (the
request), :mod:`~emulator.oss.errors`, :mod:`~emulator.oss.codec` (XML, dates), :mod:`~emulator.oss.store` (blob
files) and :mod:`~emulator.oss.crc64` (the emulator's own CRC-64/ECMA and its combine).
"""

from . import buckets, lifecycle, listing, multipart, objects  # noqa: F401  (handlers register on import)
from .pipeline import OssCall
from .routing import RAM_ACTIONS

__all__ = ["RAM_ACTIONS", "OssCall"]
