"""OSS hook: an ``alibabacloud_oss_v2`` client wired to the ``aliyun`` connection, plus a few helpers.

The OSS SDK retries on its own (``retry_max_attempts`` = the connection's ``max_attempts``); the
helpers add one log line with the RequestId and turn errors into ``AliyunApiError``. Uploads go
through the SDK's uploader, so a multi-GB stream or file is sent in parts with constant memory.

Example::

    hook = OssHook()
    with open("/tmp/dump.sql.gz", "rb") as f:
        hook.put_object_from_stream("backups", "rds/2024-01-01/dump.sql.gz", f)
    keys = [o["Key"] for o in hook.list_objects("backups", prefix="rds/")]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from aliyun_ops.exceptions import AliyunApiError
from aliyun_ops.hooks.base import AliyunBaseHook

if TYPE_CHECKING:
    import alibabacloud_oss_v2 as oss


class OssHook(AliyunBaseHook):
    """OSS calls. ``region`` defaults to the hook's / connection's region (OSS signs with it).

    Example::

        hook = OssHook(region="cn-shanghai")
        with open("backup.tar", "rb") as fh:
            hook.put_object_from_stream("ops-archive", "rds/backup.tar", fh)
    """

    service_name = "OSS"

    def __init__(self, aliyun_conn_id: str = AliyunBaseHook.default_conn_name, region: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(aliyun_conn_id=aliyun_conn_id, region=region, **kwargs)

    def oss_config(self, region: str | None = None) -> oss.config.Config:
        """OSS v2 config: region, credentials bridge, endpoint override (path style) and timeouts."""
        import alibabacloud_oss_v2 as oss

        s = self.settings
        cfg = oss.config.load_default()
        cfg.region = self.resolve_region(region)
        cfg.credentials_provider = self.oss_credentials_provider()
        if s.endpoint:
            cfg.endpoint = s.endpoint_url
            cfg.use_path_style = True
        cfg.connect_timeout = s.connect_timeout
        cfg.readwrite_timeout = s.read_timeout
        cfg.retry_max_attempts = s.max_attempts
        return cfg

    def new_client(self, region: str) -> oss.Client:
        import alibabacloud_oss_v2 as oss

        return oss.Client(self.oss_config(region))

    def get_conn(self) -> oss.Client:
        return self.get_client()

    def _call(self, action: str, fn, request: Any = None, region: str | None = None):
        # The SDK already retried; we log, and convert errors.
        return self.call(action, fn, request, region=self.resolve_region(region), max_attempts=1)

    def bucket_region(self, bucket: str) -> str:
        """The bucket's region (GetBucketLocation, answered from any region's endpoint), cached by this hook (one
        call per task: a bucket deleted and made again elsewhere is found again by the next task). Users should not
        have to know where a bucket lives."""
        import alibabacloud_oss_v2 as oss

        cache = self.__dict__.setdefault("_bucket_regions", {})
        if bucket not in cache:
            client = self.get_client()
            try:
                result = self._call("GetBucketLocation",
                                    lambda: client.get_bucket_location(oss.GetBucketLocationRequest(bucket=bucket)))
            except AliyunApiError as err:
                if err.code == "NoSuchBucket":
                    raise ValueError(f"OSS bucket {bucket!r} does not exist (create it, or check the name)") from None
                raise
            location = str(getattr(result, "location", "") or "")
            if not location:
                raise ValueError(f"OSS did not say where bucket {bucket!r} is; pass its region explicitly")
            cache[bucket] = location.removeprefix("oss-")
            self.log.info("bucket %s is in %s", bucket, cache[bucket])
        return cache[bucket]

    def object_exists(self, bucket: str, key: str, *, region: str | None = None) -> bool:
        client = self.get_client(region)
        return bool(self._call("HeadObject", lambda: client.is_object_exist(bucket, key), region=region))

    def head_object(self, bucket: str, key: str, *, region: str | None = None) -> dict | None:
        """``{"ContentLength", "ETag", "LastModified", "HashCrc64", "Metadata", ...}``, or None if missing."""
        import alibabacloud_oss_v2 as oss

        from aliyun_ops.exceptions import AliyunApiError

        client = self.get_client(region)
        try:
            res = self._call("HeadObject", client.head_object, oss.HeadObjectRequest(bucket=bucket, key=key),
                             region=region)
        except AliyunApiError as err:
            if err.is_not_found:
                return None
            raise
        return {"ContentLength": res.content_length, "ETag": res.etag, "LastModified": res.last_modified,
                "HashCrc64": res.hash_crc64, "ContentType": res.content_type,
                "StorageClass": res.storage_class, "Metadata": dict(res.metadata or {}),
                "RequestId": res.request_id}

    def put_object_from_stream(self, bucket: str, key: str, source: IO[bytes] | str | os.PathLike, *,
                               region: str | None = None, metadata: Mapping[str, str] | None = None,
                               content_type: str | None = None, tagging: str | None = None,
                               part_size: int | None = None, parallel_num: int | None = None,
                               forbid_overwrite: bool | None = None) -> dict:
        """Upload a binary stream or a local file path with the SDK uploader (multipart above ``part_size``).

        :return: ``{"ETag", "VersionId", "HashCrc64", "RequestId"}``
        """
        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        request = oss.PutObjectRequest(bucket=bucket, key=key, metadata=dict(metadata) if metadata else None,
                                       content_type=content_type, tagging=tagging,
                                       forbid_overwrite=forbid_overwrite)
        options = {k: v for k, v in {"part_size": part_size, "parallel_num": parallel_num}.items() if v}
        uploader = client.uploader(**options)
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            result = self._call("PutObject", lambda: uploader.upload_file(request, filepath=path), region=region)
        else:
            result = self._call("PutObject", lambda: uploader.upload_from(request, source), region=region)
        return {"ETag": result.etag, "VersionId": result.version_id, "HashCrc64": result.hash_crc64,
                "RequestId": result.request_id}

    def list_objects(self, bucket: str, prefix: str | None = None, *, region: str | None = None,
                     delimiter: str | None = None, page_size: int = 1000) -> list[dict]:
        """Every object under ``prefix`` (all pages): ``[{"Key", "Size", "ETag", "LastModified",
        "StorageClass", "Type"}]``; with ``delimiter``, common prefixes come as ``{"Prefix": ...}`` entries."""
        import alibabacloud_oss_v2 as oss

        region = self.resolve_region(region)
        client = self.get_client(region)
        out: list[dict] = []
        token: str | None = None
        while True:
            request = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix, delimiter=delimiter,
                                               continuation_token=token, max_keys=page_size)
            page = self._call("ListObjectsV2", client.list_objects_v2, request, region=region)
            for obj in page.contents or []:
                out.append({"Key": obj.key, "Size": obj.size, "ETag": obj.etag, "LastModified": obj.last_modified,
                            "StorageClass": obj.storage_class, "Type": obj.object_type})
            for cp in page.common_prefixes or []:
                out.append({"Prefix": cp.prefix})
            token = page.next_continuation_token
            if not page.is_truncated or not token:
                return out

    def delete_object(self, bucket: str, key: str, *, region: str | None = None) -> None:
        import alibabacloud_oss_v2 as oss

        client = self.get_client(region)
        self._call("DeleteObject", client.delete_object, oss.DeleteObjectRequest(bucket=bucket, key=key),
                   region=region)
