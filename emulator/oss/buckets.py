"""OSS buckets: create, delete, list, info, location, ACL, stat, and the fleet spec's ``buckets`` section."""

from __future__ import annotations

import re

from aiohttp import web

from ..errors import ApiError
from ..registry import fleet_section
from . import common
from .codec import doc, el, iso_ms, parse
from .context import Ctx
from .errors import err, invalid_argument
from .routing import operation

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _validate_bucket_name(name: str) -> None:
    if not _BUCKET_RE.match(name):
        raise err("InvalidBucketName", "The specified bucket is not valid.", 400, "0015-00000001",
                  BucketName=name)


def _endpoint(region: str) -> str:
    return f"oss-{region}.aliyuncs.com"


@operation("PutBucket")
async def put_bucket(ctx: Ctx) -> web.StreamResponse:
    name = ctx.bucket or ""
    _validate_bucket_name(name)
    region = ctx.identity.region or "cn-hangzhou"
    acl = ctx.headers.get("x-oss-acl", "private")
    if acl not in common.ACLS:
        raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
    storage_class = "Standard"
    body = await common.read_xml_body(ctx)
    if body:
        tree = parse(body, "CreateBucketConfiguration")
        storage_class = tree.findtext("StorageClass") or "Standard"
        if storage_class not in common.STORAGE_CLASSES:
            raise invalid_argument("Invalid storage class.", "StorageClass", storage_class)
    buckets = ctx.state.table(common.BUCKETS)
    if name in buckets:
        raise err("BucketAlreadyExists", "The requested bucket name is not available. The bucket namespace is "
                  "shared by all users of the system. Please select a different name and try again.", 409,
                  "0015-00000104", BucketName=name)
    buckets[name] = {"name": name, "region": region, "acl": acl, "storage_class": storage_class,
                     "created": ctx.now}
    ctx.state.dirty = True
    return ctx.empty(headers={"Location": f"/{name}"})


@operation("DeleteBucket")
async def delete_bucket(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    prefix = f"{ctx.bucket}/"
    if any(k.startswith(prefix) for k in ctx.state.table(common.OBJECTS)):
        raise err("BucketNotEmpty", "The bucket you tried to delete is not empty.", 409, "0015-00000301",
                  BucketName=ctx.bucket)
    uploads = ctx.state.table(common.UPLOADS)
    if any(u["bucket"] == ctx.bucket for u in uploads.values()):
        raise err("BucketNotEmpty", "The bucket has multipart uploads. Please delete them first.", 409,
                  "0015-00000302", BucketName=ctx.bucket)
    del ctx.state.table(common.BUCKETS)[ctx.bucket]
    ctx.state.dirty = True
    return ctx.empty(204)


@operation("ListBuckets")
async def list_buckets(ctx: Ctx) -> web.StreamResponse:
    q = ctx.query
    prefix = q.get("prefix", "")
    marker = q.get("marker", "")
    max_keys = common.int_arg(q, "max-keys", 100, 1, 1000)
    names = sorted(n for n in ctx.state.table(common.BUCKETS) if n.startswith(prefix) and n > marker)
    page, truncated = names[:max_keys], len(names) > max_keys
    buckets = ctx.state.table(common.BUCKETS)
    parts = [el("Prefix", prefix), el("Marker", marker), el("MaxKeys", max_keys), el("IsTruncated", truncated)]
    if truncated:
        parts.append(el("NextMarker", page[-1]))
    parts.append(common.owner())
    items = []
    for n in page:
        b = buckets[n]
        items.append("<Bucket>" + el("CreationDate", iso_ms(b["created"])) + el("ExtranetEndpoint", _endpoint(
            b["region"])) + el("IntranetEndpoint", _endpoint(b["region"] + "-internal")) + el(
            "Location", f"oss-{b['region']}") + el("Name", n) + el("Region", b["region"]) + el(
            "StorageClass", b["storage_class"]) + "</Bucket>")
    parts.append("<Buckets>" + "".join(items) + "</Buckets>")
    return ctx.xml(doc("ListAllMyBucketsResult", *parts))


@operation("GetBucketInfo")
async def get_bucket_info(ctx: Ctx) -> web.StreamResponse:
    b = common.use_bucket(ctx)
    body = doc("BucketInfo", "<Bucket>" + el("AccessMonitor", "Disabled") + el("CreationDate", iso_ms(b["created"]))
               + el("ExtranetEndpoint", _endpoint(b["region"]))
               + el("IntranetEndpoint", _endpoint(b["region"] + "-internal"))
               + el("Location", f"oss-{b['region']}") + el("StorageClass", b["storage_class"])
               + el("TransferAcceleration", "Disabled") + el("CrossRegionReplication", "Disabled")
               + el("Name", b["name"]) + el("DataRedundancyType", "LRS") + common.owner()
               + "<AccessControlList>" + el("Grant", b.get("acl", "private")) + "</AccessControlList>"
               + "</Bucket>")
    return ctx.xml(body)


@operation("HeadBucket")
async def head_bucket(ctx: Ctx) -> web.StreamResponse:
    b = common.use_bucket(ctx)
    return ctx.empty(headers={"x-oss-bucket-region": b["region"]})


@operation("GetBucketLocation")
async def get_bucket_location(ctx: Ctx) -> web.StreamResponse:
    """Answered whatever region the request was signed for: it is how a client discovers the bucket's region."""
    b = common.use_bucket(ctx, any_region=True)
    return ctx.xml((f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint>oss-{b["region"]}'
                    "</LocationConstraint>").encode())


@operation("GetBucketAcl")
async def get_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    b = common.use_bucket(ctx)
    return ctx.xml(doc("AccessControlPolicy", common.owner(),
                       "<AccessControlList>" + el("Grant", b.get("acl", "private")) + "</AccessControlList>"))


@operation("PutBucketAcl")
async def put_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    b = common.use_bucket(ctx)
    acl = ctx.headers.get("x-oss-acl", "")
    if acl not in common.ACLS:
        raise invalid_argument("no such bucket access control exists", "x-oss-acl", acl)
    b["acl"] = acl
    ctx.state.dirty = True
    return ctx.empty()


@operation("GetBucketStat")
async def get_bucket_stat(ctx: Ctx) -> web.StreamResponse:
    common.use_bucket(ctx)
    objs = common.bucket_objects(ctx, ctx.bucket or "")
    storage = sum(o["size"] for o in objs)
    uploads = sum(1 for u in ctx.state.table(common.UPLOADS).values() if u["bucket"] == ctx.bucket)
    last = int(max((o["last_modified"] for o in objs), default=0))
    return ctx.xml(doc("BucketStat", el("Storage", storage), el("ObjectCount", len(objs)),
                       el("MultipartUploadCount", uploads), el("LiveChannelCount", 0),
                       el("LastModifiedTime", last), el("StandardStorage", storage),
                       el("StandardObjectCount", len(objs))))


# -- fleet ------------------------------------------------------------------------------------
@fleet_section("buckets", order=80)
def load_buckets(state, spec) -> list[str]:
    """``buckets: [{"name": "backups", "region": "cn-hangzhou", "acl": "private"}]``."""
    if not isinstance(spec, list):
        raise ApiError("InvalidFleetSpec", "buckets must be a list", 400)
    buckets = state.table(common.BUCKETS)
    created = []
    for item in spec:
        if not isinstance(item, dict) or not item.get("name"):
            raise ApiError("InvalidFleetSpec", f"bucket entry needs a name: {item!r}", 400)
        name = item["name"]
        if not _BUCKET_RE.match(name):
            raise ApiError("InvalidFleetSpec", f"invalid bucket name {name!r}", 400)
        acl = item.get("acl", "private")
        if acl not in common.ACLS:
            raise ApiError("InvalidFleetSpec", f"bucket {name}: acl must be one of {', '.join(common.ACLS)}", 400)
        storage_class = item.get("storage_class", "Standard")
        if storage_class not in common.STORAGE_CLASSES:
            raise ApiError("InvalidFleetSpec", f"bucket {name}: invalid storage_class {storage_class!r}", 400)
        if name not in buckets:
            buckets[name] = {"name": name, "region": item.get("region", "cn-hangzhou"), "acl": acl,
                             "storage_class": storage_class, "created": state.now()}
        else:
            buckets[name].update(acl=acl)
        created.append(name)
    state.dirty = True
    return created
