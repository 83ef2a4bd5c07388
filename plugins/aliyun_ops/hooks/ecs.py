"""ECS hook: thin, paginating wrappers over ``alibabacloud_ecs20140526`` returning plain dicts.

Every method goes through :meth:`AliyunBaseHook.call` (or ``acall`` for the ``*_async`` ones), so it
is rate limited, retried on throttling/5xx/network errors, logged with its RequestId, and raises
:class:`aliyun_ops.exceptions.AliyunApiError` on failure. Dicts use the wire's PascalCase keys
(``body.to_map()``), e.g. ``{"ImageId": ..., "Status": ..., "Tags": {"Tag": [{"TagKey", "TagValue"}]}}``.
Tags are passed in as ``dict[str, str]``.

Example::

    hook = EcsHook(aliyun_conn_id="aliyun_default")
    images = hook.describe_images("cn-hangzhou", image_ids=["m-1", "m-2"])
    image_id = hook.create_image("cn-hangzhou", "i-1", "backup-i-1-20240101", tags={"managed-by": "aliyun-ops"},
                                 client_token="tok-...")
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aliyun_ops.exceptions import AliyunApiError, AliyunPermissionError
from aliyun_ops.hooks.base import AliyunBaseHook
from aliyun_ops.logic import statuses as st

if TYPE_CHECKING:
    from alibabacloud_ecs20140526.client import Client as EcsClient

ALL_IMAGE_STATUSES = ",".join(st.IMAGE_STATUSES)
"""DescribeImages returns only Available images unless told otherwise; we ask for all by default."""

MAX_IDS_PER_CALL = 100
"""DescribeImages/DescribeInstances/DescribeSnapshots/DescribeDisks and Start/StopInstances take ≤100 ids."""
MAX_TAG_RESOURCE_IDS = 50
"""TagResources/ListTagResources take ≤50 resource ids."""
MAX_SHARE_ACCOUNTS = 10
"""ModifyImageSharePermission takes ≤10 accounts per call."""


def _models():
    from alibabacloud_ecs20140526 import models

    return models


def chunks(items: Iterable[Any], size: int) -> list[list[Any]]:
    """Split ``items`` into lists of at most ``size`` (order kept, duplicates removed)."""
    seen: dict[Any, None] = dict.fromkeys(items)
    ordered = list(seen)
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def tag_list(model_cls: type, tags: Mapping[str, str] | None) -> list[Any] | None:
    """``{"k": "v"}`` -> ``[model_cls(key="k", value="v")]`` (None for no tags)."""
    if not tags:
        return None
    return [model_cls(key=str(k), value="" if v is None else str(v)) for k, v in tags.items()]


def tags_of(item: Mapping[str, Any]) -> dict[str, str]:
    """The ``Tags`` of a described resource as a plain dict (``{"Tags": {"Tag": [{TagKey, TagValue}]}}``)."""
    tags = item.get("Tags") or {}
    entries = tags.get("Tag", []) if isinstance(tags, Mapping) else tags
    return {t.get("TagKey", t.get("Key")): t.get("TagValue", t.get("Value", "")) for t in entries or []}


def _items(body: Mapping[str, Any], *path: str) -> list[dict]:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return []
        node = node.get(key)
    return list(node or [])


def _dig(body: Mapping[str, Any], *path: str) -> Any:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _body(response: Any) -> dict:
    body = getattr(response, "body", None)
    return body.to_map() if body is not None else {}


class EcsHook(AliyunBaseHook):
    """ECS (and Cloud Assistant) calls. ``region`` arguments default to the hook's / connection's region.

    Example::

        hook = EcsHook(region="cn-hangzhou")
        running = hook.describe_instances(tags={"backup": "daily"}, status="Running")   # every page
        image_id = hook.create_image(None, running[0]["InstanceId"], "golden-1", client_token="tok-1")
    """

    service_name = "ECS"

    def __init__(self, aliyun_conn_id: str = AliyunBaseHook.default_conn_name, region: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(aliyun_conn_id=aliyun_conn_id, region=region, **kwargs)

    # -- clients ----------------------------------------------------------------------------
    def new_client(self, region: str) -> EcsClient:
        from alibabacloud_ecs20140526.client import Client

        return Client(self.openapi_config(region))

    def get_conn(self) -> EcsClient:
        return self.get_client()

    # -- plumbing ---------------------------------------------------------------------------
    def _do(self, action: str, region: str | None, request: Any) -> dict:
        region = self.resolve_region(region)
        client = self.get_client(region)
        method = getattr(client, _snake(action))
        return _body(self.call(action, method, request, region=region))

    async def _ado(self, client: EcsClient, action: str, region: str, request: Any) -> dict:
        method = getattr(client, _snake(action) + "_async")
        return _body(await self.acall(action, method, request, region=region))

    def _pages_by_token(self, action: str, region: str | None, make_request: Callable[[str | None], Any],
                        items_path: Sequence[str], token_path: Sequence[str] = ("NextToken",)) -> list[dict]:
        out: list[dict] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            body = self._do(action, region, make_request(token))
            out.extend(_items(body, *items_path))
            token = _dig(body, *token_path) or None
            if not token or token in seen:
                return out
            seen.add(token)

    async def _apages_by_token(self, client: EcsClient, action: str, region: str,
                               make_request: Callable[[str | None], Any], items_path: Sequence[str],
                               token_path: Sequence[str] = ("NextToken",)) -> list[dict]:
        out: list[dict] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            body = await self._ado(client, action, region, make_request(token))
            out.extend(_items(body, *items_path))
            token = _dig(body, *token_path) or None
            if not token or token in seen:
                return out
            seen.add(token)

    async def _aby_batches(self, region: str | None, ids: Sequence[str], client: EcsClient | None,
                           fetch: Callable[[EcsClient, str, list[str]], Awaitable[list[dict]]]) -> list[dict]:
        """Async, for triggers: ``fetch(client, region, batch)`` for ``ids`` in batches of 100, results joined."""
        await self.asettings()
        region = self.resolve_region(region)
        if not ids:
            return []
        client = client or self.get_async_client(region)
        out: list[dict] = []
        for batch in chunks(ids, MAX_IDS_PER_CALL):
            out.extend(await fetch(client, region, list(batch)))
        return out

    @staticmethod
    def _more_pages(body: Mapping[str, Any], got_total: int, page_items: int, page_size: int) -> bool:
        total = int(body.get("TotalCount") or 0)
        return page_items >= page_size and got_total < total

    def _pages_by_number(self, action: str, region: str | None, make_request: Callable[[int], Any],
                         items_path: Sequence[str], page_size: int) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            body = self._do(action, region, make_request(page))
            items = _items(body, *items_path)
            out.extend(items)
            if not self._more_pages(body, len(out), len(items), page_size):
                return out
            page += 1

    async def _apages_by_number(self, client: EcsClient, action: str, region: str,
                                make_request: Callable[[int], Any], items_path: Sequence[str],
                                page_size: int) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            body = await self._ado(client, action, region, make_request(page))
            items = _items(body, *items_path)
            out.extend(items)
            if not self._more_pages(body, len(out), len(items), page_size):
                return out
            page += 1

    # -- regions ----------------------------------------------------------------------------
    def describe_regions(self, region: str | None = None) -> list[dict]:
        """``[{"RegionId", "LocalName", "RegionEndpoint", "Status"}]``."""
        m = _models()
        return _items(self._do("DescribeRegions", region or self.region_name or self.settings.region
                               or "cn-hangzhou", m.DescribeRegionsRequest()), "Regions", "Region")

    def describe_account_attributes(self, region: str | None, names: Sequence[str]) -> dict[str, dict]:
        """``{name: {"value": str, "count": int | None}}`` of DescribeAccountAttributes (first value per name)."""
        m = _models()
        region = self.resolve_region(region)
        body = self._do("DescribeAccountAttributes", region, m.DescribeAccountAttributesRequest(
            region_id=region, attribute_name=list(names)))
        out: dict[str, dict] = {}
        for item in _items(body, "AccountAttributeItems", "AccountAttributeItem"):
            values = _items(item.get("AttributeValues") or {}, "ValueItem")
            first = values[0] if values else {}
            count = first.get("Count")
            out[item.get("AttributeName", "")] = {"value": first.get("Value"),
                                                  "count": int(count) if count is not None else None}
        return out

    def describe_zones(self, region: str | None = None) -> list[dict]:
        m = _models()
        region = self.resolve_region(region)
        return _items(self._do("DescribeZones", region, m.DescribeZonesRequest(region_id=region)), "Zones", "Zone")

    # -- instances --------------------------------------------------------------------------
    def _instances_request(self, region: str, ids: list[str] | None, tags, status, name, extra: dict):
        m = _models()

        def make(token: str | None):
            return m.DescribeInstancesRequest(
                region_id=region, instance_ids=json.dumps(ids) if ids else None,
                tag=tag_list(m.DescribeInstancesRequestTag, tags), status=status, instance_name=name,
                max_results=MAX_IDS_PER_CALL, next_token=token, **extra)

        return make

    def describe_instances(self, region: str | None = None, instance_ids: Sequence[str] | None = None,
                           tags: Mapping[str, str] | None = None, status: str | None = None, name: str | None = None,
                           *, vpc_id: str | None = None, zone_id: str | None = None,
                           instance_type: str | None = None) -> list[dict]:
        """All matching instances (every page; id lists split into batches of 100).

        :param tags: every tag must match, key and value (``{"env": "test"}``)
        :param status: ``Running``/``Stopped``/``Starting``/``Stopping``/``Pending``
        :param name: ``InstanceName`` (``*`` wildcards allowed)
        """
        region = self.resolve_region(region)
        extra = {k: v for k, v in {"vpc_id": vpc_id, "zone_id": zone_id, "instance_type": instance_type}.items()
                 if v is not None}
        if instance_ids is not None and not instance_ids:
            return []
        batches: list[list[str] | None] = chunks(instance_ids, MAX_IDS_PER_CALL) if instance_ids else [None]
        out: list[dict] = []
        for ids in batches:
            out.extend(self._pages_by_token("DescribeInstances", region,
                                            self._instances_request(region, ids, tags, status, name, extra),
                                            ("Instances", "Instance")))
        return out

    async def describe_instances_async(self, region: str | None, instance_ids: Sequence[str],
                                       client: EcsClient | None = None) -> list[dict]:
        """Async DescribeInstances for triggers: the given ids, in batches of 100, all pages."""
        return await self._aby_batches(region, instance_ids, client, lambda c, r, ids: self._apages_by_token(
            c, "DescribeInstances", r, self._instances_request(r, ids, None, None, None, {}), ("Instances", "Instance")))

    def start_instances(self, region: str | None, instance_ids: Sequence[str], *,
                        batch_optimization: str = "SuccessFirst", dry_run: bool = False) -> list[dict]:
        """StartInstances in batches of 100; one ``{"InstanceId", "Code", "Message", "PreviousStatus",
        "CurrentStatus"}`` per instance (``Code == "200"`` means accepted). With ``SuccessFirst`` one bad id
        does not fail the others."""
        m = _models()
        region = self.resolve_region(region)
        out: list[dict] = []
        for ids in chunks(instance_ids, MAX_IDS_PER_CALL):
            body = self._do("StartInstances", region, m.StartInstancesRequest(
                region_id=region, instance_id=ids, batch_optimization=batch_optimization, dry_run=dry_run))
            out.extend(_items(body, "InstanceResponses", "InstanceResponse"))
        return out

    def stop_instances(self, region: str | None, instance_ids: Sequence[str], *, force_stop: bool = False,
                       stopped_mode: str | None = None, batch_optimization: str = "SuccessFirst",
                       dry_run: bool = False) -> list[dict]:
        """StopInstances in batches of 100; per-instance results as in :meth:`start_instances`.

        :param stopped_mode: ``StopCharging`` or ``KeepCharging`` (None: the account default)
        """
        m = _models()
        region = self.resolve_region(region)
        out: list[dict] = []
        for ids in chunks(instance_ids, MAX_IDS_PER_CALL):
            body = self._do("StopInstances", region, m.StopInstancesRequest(
                region_id=region, instance_id=ids, force_stop=force_stop, stopped_mode=stopped_mode,
                batch_optimization=batch_optimization, dry_run=dry_run))
            out.extend(_items(body, "InstanceResponses", "InstanceResponse"))
        return out

    UNDO_CHECKS = {"StartInstance": "StartInstanceRequest", "StartInstances": "StartInstancesRequest",
                   "DeleteInstance": "DeleteInstanceRequest"}

    def check_allowed(self, action: str, region: str | None, instance_id: str) -> None:
        """Prove, with a DryRun call, that ``action`` (the undo of a step about to be taken: StartInstance(s) before a
        stop, DescribeInstances and DeleteInstance before a temporary instance is made, DescribeInvocations and
        DescribeInvocationResults before a freeze whose thaw must be watched, UntagResources before a pause tag,
        DescribeDisks before a system disk is replaced) is allowed, so a missing RAM permission fails the
        step before it changes anything. Raises :class:`AliyunPermissionError`; any other answer (DryRunOperation,
        a status or NotFound error) means RAM let the request through.

        Example::

            hook.check_allowed("StartInstances", "cn-hangzhou", "i-bp1abc")   # then stop it
        """
        m = _models()
        region = self.resolve_region(region)
        reads = {"DescribeInstances": lambda: self.describe_instances(region, instance_ids=[instance_id]),
                 "DescribeDisks": lambda: self.describe_disks(region, disk_ids=["d-permission-check"]),
                 "DescribeInvocations": lambda: self.describe_invocations(region, "t-permission-check"),
                 "DescribeInvocationResults": lambda: self.describe_invocation_results(region, "t-permission-check"),
                 # no DryRun: a command for an instance that does not exist runs nowhere (InvalidInstance.NotFound)
                 "RunCommand": lambda: self.run_command(region, ["i-permission-check"], "exit 0",
                                                        name="aliyun-ops-permission-check"),
                 # no DryRun: removing a tag key the instance does not carry changes nothing
                 "UntagResources": lambda: self.untag_resources(region, "instance", [instance_id],
                                                                ["ops:permission-check"])}
        if action in reads:  # a call that changes nothing: an unknown id answers empty or NotFound
            try:
                reads[action]()
            except AliyunPermissionError:
                raise
            except AliyunApiError:
                pass
            return
        fields = {"StartInstances": {"region_id": region, "instance_id": [instance_id]},
                  "StartInstance": {"instance_id": instance_id},
                  "DeleteInstance": {"instance_id": instance_id}}[action]
        request = getattr(m, self.UNDO_CHECKS[action])(dry_run=True, **fields)
        try:
            self.call(action, getattr(self.get_client(region), _snake(action)), request, region=region,
                      max_attempts=1)
        except AliyunPermissionError:
            raise
        except AliyunApiError:
            return

    def start_instance(self, region: str | None, instance_id: str) -> dict:
        m = _models()
        return self._do("StartInstance", region, m.StartInstanceRequest(instance_id=instance_id))

    def reboot_instance(self, region: str | None, instance_id: str, *, force_stop: bool = False) -> dict:
        m = _models()
        return self._do("RebootInstance", region, m.RebootInstanceRequest(instance_id=instance_id,
                                                                          force_stop=force_stop))

    def stop_instance(self, region: str | None, instance_id: str, *, force_stop: bool = False,
                      stopped_mode: str | None = None) -> dict:
        m = _models()
        return self._do("StopInstance", region, m.StopInstanceRequest(
            instance_id=instance_id, force_stop=force_stop, stopped_mode=stopped_mode))

    def run_instances(self, region: str | None, image_id: str, instance_type: str, *, amount: int = 1,
                      security_group_id: str | None = None, v_switch_id: str | None = None,
                      zone_id: str | None = None, instance_name: str | None = None,
                      tags: Mapping[str, str] | None = None, client_token: str | None = None,
                      system_disk_size: int | None = None, system_disk_category: str | None = None,
                      internet_max_bandwidth_out: int | None = None, instance_charge_type: str | None = None,
                      **extra: Any) -> list[str]:
        """RunInstances; returns the new instance ids. ``extra`` goes to ``RunInstancesRequest`` unchanged."""
        m = _models()
        region = self.resolve_region(region)
        system_disk = None
        if system_disk_size is not None or system_disk_category is not None:
            system_disk = m.RunInstancesRequestSystemDisk(size=system_disk_size, category=system_disk_category)
        body = self._do("RunInstances", region, m.RunInstancesRequest(
            region_id=region, image_id=image_id, instance_type=instance_type, amount=amount,
            security_group_id=security_group_id, v_switch_id=v_switch_id, zone_id=zone_id,
            instance_name=instance_name, tag=tag_list(m.RunInstancesRequestTag, tags), client_token=client_token,
            system_disk=system_disk, internet_max_bandwidth_out=internet_max_bandwidth_out,
            instance_charge_type=instance_charge_type, **extra))
        return [str(i) for i in _items(body, "InstanceIdSets", "InstanceIdSet")]

    def delete_instance(self, region: str | None, instance_id: str, *, force: bool = False,
                        force_stop: bool | None = None) -> dict:
        m = _models()
        return self._do("DeleteInstance", region, m.DeleteInstanceRequest(
            instance_id=instance_id, force=force, force_stop=force_stop))

    def replace_system_disk(self, region: str | None, instance_id: str, image_id: str, *,
                            client_token: str | None = None, system_disk_size: int | None = None,
                            password_inherit: bool | None = None, key_pair_name: str | None = None,
                            **extra: Any) -> str:
        """ReplaceSystemDisk (the instance must be Stopped); returns the new system disk id."""
        m = _models()
        system_disk = m.ReplaceSystemDiskRequestSystemDisk(size=system_disk_size) if system_disk_size else None
        body = self._do("ReplaceSystemDisk", region, m.ReplaceSystemDiskRequest(
            instance_id=instance_id, image_id=image_id, client_token=client_token, system_disk=system_disk,
            password_inherit=password_inherit, key_pair_name=key_pair_name, **extra))
        return body.get("DiskId")

    # -- images -----------------------------------------------------------------------------
    def _images_request(self, region: str, ids: list[str] | None, status: str | None, owner: str | None, tags,
                        image_name: str | None, page_size: int, extra: dict):
        m = _models()

        def make(page: int):
            return m.DescribeImagesRequest(
                region_id=region, image_id=",".join(ids) if ids else None, status=status,
                image_owner_alias=owner, tag=tag_list(m.DescribeImagesRequestTag, tags), image_name=image_name,
                page_number=page, page_size=page_size, **extra)

        return make

    def describe_images(self, region: str | None = None, image_ids: Sequence[str] | None = None,
                        status: str | None = ALL_IMAGE_STATUSES, owner: str | None = "self",
                        tags: Mapping[str, str] | None = None, image_name: str | None = None, *,
                        snapshot_id: str | None = None, usage: str | None = None,
                        page_size: int = 100) -> list[dict]:
        """All matching images (every page; id lists split into batches of 100).

        :param status: comma-separated statuses; default all of them (the API's default is Available only)
        :param owner: ``ImageOwnerAlias``: ``self`` (default), ``system``, ``others``, ``marketplace``; None: any
        """
        region = self.resolve_region(region)
        if image_ids is not None and not image_ids:
            return []
        extra = {k: v for k, v in {"snapshot_id": snapshot_id, "usage": usage}.items() if v is not None}
        out: list[dict] = []
        for ids in (chunks(image_ids, MAX_IDS_PER_CALL) if image_ids else [None]):
            make = self._images_request(region, ids, status, owner, tags, image_name, page_size, extra)
            out.extend(self._pages_by_number("DescribeImages", region, make, ("Images", "Image"), page_size))
        return out

    def count_images(self, region: str | None = None, tags: Mapping[str, str] | None = None,
                     owner: str | None = "self", status: str | None = ALL_IMAGE_STATUSES) -> int:
        """How many images match: one DescribeImages call of page size 1, read ``TotalCount``."""
        region = self.resolve_region(region)
        make = self._images_request(region, None, status, owner, tags, None, 1, {})
        return int(self._do("DescribeImages", region, make(1)).get("TotalCount") or 0)

    async def count_images_async(self, region: str | None, tags: Mapping[str, str] | None = None, *,
                                 owner: str | None = "self", status: str | None = ALL_IMAGE_STATUSES,
                                 client: EcsClient | None = None) -> int:
        """Async :meth:`count_images` for triggers."""
        await self.asettings()
        region = self.resolve_region(region)
        client = client or self.get_async_client(region)
        make = self._images_request(region, None, status, owner, tags, None, 1, {})
        return int((await self._ado(client, "DescribeImages", region, make(1))).get("TotalCount") or 0)

    async def describe_images_async(self, region: str | None, image_ids: Sequence[str], *,
                                    status: str | None = ALL_IMAGE_STATUSES, owner: str | None = None,
                                    client: EcsClient | None = None) -> list[dict]:
        """Async DescribeImages of the given ids (batches of 100, all pages) for triggers.

        ``owner`` defaults to any owner here, so a poll of a shared or copied image id still finds it.
        """
        return await self._aby_batches(region, image_ids, client, lambda c, r, ids: self._apages_by_number(
            c, "DescribeImages", r, self._images_request(r, ids, status, owner, None, None, MAX_IDS_PER_CALL, {}),
            ("Images", "Image"), MAX_IDS_PER_CALL))

    def create_image(self, region: str | None, instance_id: str, image_name: str | None = None,
                     description: str | None = None, tags: Mapping[str, str] | None = None,
                     client_token: str | None = None, *, snapshot_id: str | None = None, **extra: Any) -> str:
        """CreateImage from an instance (or ``snapshot_id`` with ``instance_id=None``); returns the image id.

        Pass a stable ``client_token``: a retried call with the same token returns the same image.
        """
        m = _models()
        region = self.resolve_region(region)
        body = self._do("CreateImage", region, m.CreateImageRequest(
            region_id=region, instance_id=instance_id, snapshot_id=snapshot_id, image_name=image_name,
            description=description, tag=tag_list(m.CreateImageRequestTag, tags), client_token=client_token,
            **extra))
        return body["ImageId"]

    def copy_image(self, region: str | None, image_id: str, destination_region: str, name: str | None = None,
                   description: str | None = None, tags: Mapping[str, str] | None = None,
                   encrypted: bool | None = None, kms_key_id: str | None = None,
                   client_token: str | None = None) -> str:
        """CopyImage from ``region`` to ``destination_region``; returns the new image id (in the destination)."""
        m = _models()
        region = self.resolve_region(region)
        body = self._do("CopyImage", region, m.CopyImageRequest(
            region_id=region, image_id=image_id, destination_region_id=destination_region,
            destination_image_name=name, destination_description=description,
            tag=tag_list(m.CopyImageRequestTag, tags), encrypted=encrypted, kmskey_id=kms_key_id,
            client_token=client_token))
        return body["ImageId"]

    def cancel_copy_image(self, region: str | None, image_id: str) -> dict:
        """CancelCopyImage of a copy in progress (``image_id`` is the copy, in its destination region): the copy is
        deleted."""
        m = _models()
        region = self.resolve_region(region)
        return self._do("CancelCopyImage", region, m.CancelCopyImageRequest(region_id=region, image_id=image_id))

    def delete_image(self, region: str | None, image_id: str, force: bool = False) -> dict:
        m = _models()
        region = self.resolve_region(region)
        return self._do("DeleteImage", region, m.DeleteImageRequest(region_id=region, image_id=image_id,
                                                                    force=force))

    def modify_image_share_permission(self, region: str | None, image_id: str, *,
                                      add_accounts: Sequence[str] | None = None,
                                      remove_accounts: Sequence[str] | None = None,
                                      is_public: bool | None = None) -> None:
        """Share/unshare an image with accounts (batches of 10 accounts per call)."""
        m = _models()
        region = self.resolve_region(region)
        adds = chunks(add_accounts or [], MAX_SHARE_ACCOUNTS)
        removes = chunks(remove_accounts or [], MAX_SHARE_ACCOUNTS)
        rounds = max(len(adds), len(removes), 1)
        for i in range(rounds):
            self._do("ModifyImageSharePermission", region, m.ModifyImageSharePermissionRequest(
                region_id=region, image_id=image_id, add_account=adds[i] if i < len(adds) else None,
                remove_account=removes[i] if i < len(removes) else None,
                is_public=is_public if i == 0 else None))

    def describe_image_share_permission(self, region: str | None, image_id: str) -> dict:
        """``{"ImageId", "RegionId", "Accounts": [{"AliyunId", "SharedTime"}], "ShareGroups": [{"Group"}]}``."""
        m = _models()
        region = self.resolve_region(region)
        accounts: list[dict] = []
        groups: list[dict] = []
        page = 1
        while True:
            body = self._do("DescribeImageSharePermission", region, m.DescribeImageSharePermissionRequest(
                region_id=region, image_id=image_id, page_number=page, page_size=100))
            items = _items(body, "Accounts", "Account")
            accounts.extend(items)
            if page == 1:
                groups = _items(body, "ShareGroups", "ShareGroup")
            if not self._more_pages(body, len(accounts), len(items), 100):
                break
            page += 1
        return {"ImageId": image_id, "RegionId": region, "Accounts": accounts, "ShareGroups": groups}

    # -- snapshots and disks ----------------------------------------------------------------
    def describe_snapshots(self, region: str | None = None, snapshot_ids: Sequence[str] | None = None, *,
                           disk_id: str | None = None, instance_id: str | None = None,
                           tags: Mapping[str, str] | None = None, status: str | None = None,
                           snapshot_type: str | None = None) -> list[dict]:
        """All matching snapshots (every page; id lists in batches of 100)."""
        m = _models()
        region = self.resolve_region(region)
        if snapshot_ids is not None and not snapshot_ids:
            return []
        out: list[dict] = []
        for ids in (chunks(snapshot_ids, MAX_IDS_PER_CALL) if snapshot_ids else [None]):
            def make(token: str | None, ids=ids):
                return m.DescribeSnapshotsRequest(
                    region_id=region, snapshot_ids=json.dumps(ids) if ids else None, disk_id=disk_id,
                    instance_id=instance_id, tag=tag_list(m.DescribeSnapshotsRequestTag, tags), status=status,
                    snapshot_type=snapshot_type, max_results=MAX_IDS_PER_CALL, next_token=token)

            out.extend(self._pages_by_token("DescribeSnapshots", region, make, ("Snapshots", "Snapshot")))
        return out

    async def describe_snapshots_async(self, region: str | None, snapshot_ids: Sequence[str], *,
                                       client: EcsClient | None = None) -> list[dict]:
        """Async DescribeSnapshots of the given ids (batches of 100, every page) for triggers."""
        m = _models()
        return await self._aby_batches(region, snapshot_ids, client, lambda c, r, ids: self._apages_by_token(
            c, "DescribeSnapshots", r, lambda token: m.DescribeSnapshotsRequest(
                region_id=r, snapshot_ids=json.dumps(ids), max_results=MAX_IDS_PER_CALL, next_token=token),
            ("Snapshots", "Snapshot")))

    def create_snapshot(self, region: str | None, disk_id: str, name: str | None = None,
                        description: str | None = None, tags: Mapping[str, str] | None = None,
                        client_token: str | None = None, *, retention_days: int | None = None) -> str:
        """CreateSnapshot of a disk; returns the snapshot id."""
        m = _models()
        body = self._do("CreateSnapshot", region, m.CreateSnapshotRequest(
            disk_id=disk_id, snapshot_name=name, description=description,
            tag=tag_list(m.CreateSnapshotRequestTag, tags), client_token=client_token,
            retention_days=retention_days))
        return body["SnapshotId"]

    def delete_snapshot(self, region: str | None, snapshot_id: str, force: bool = False) -> dict:
        m = _models()
        return self._do("DeleteSnapshot", region, m.DeleteSnapshotRequest(snapshot_id=snapshot_id, force=force))

    def describe_disks(self, region: str | None = None, disk_ids: Sequence[str] | None = None, *,
                       instance_id: str | None = None, disk_type: str | None = None,
                       tags: Mapping[str, str] | None = None) -> list[dict]:
        """All matching disks (every page; id lists in batches of 100). ``disk_type``: system/data/all."""
        m = _models()
        region = self.resolve_region(region)
        if disk_ids is not None and not disk_ids:
            return []
        out: list[dict] = []
        for ids in (chunks(disk_ids, MAX_IDS_PER_CALL) if disk_ids else [None]):
            def make(token: str | None, ids=ids):
                return m.DescribeDisksRequest(
                    region_id=region, disk_ids=json.dumps(ids) if ids else None, instance_id=instance_id,
                    disk_type=disk_type, tag=tag_list(m.DescribeDisksRequestTag, tags),
                    max_results=MAX_IDS_PER_CALL, next_token=token)

            out.extend(self._pages_by_token("DescribeDisks", region, make, ("Disks", "Disk")))
        return out

    # -- tags -------------------------------------------------------------------------------
    def tag_resources(self, region: str | None, resource_type: str, ids: Sequence[str],
                      tags: Mapping[str, str]) -> None:
        """Add ``tags`` to resources (``resource_type``: instance, disk, snapshot, image, ...); ≤50 ids per call."""
        m = _models()
        region = self.resolve_region(region)
        if not ids or not tags:
            return
        for batch in chunks(ids, MAX_TAG_RESOURCE_IDS):
            self._do("TagResources", region, m.TagResourcesRequest(
                region_id=region, resource_type=resource_type, resource_id=batch,
                tag=tag_list(m.TagResourcesRequestTag, tags)))

    def untag_resources(self, region: str | None, resource_type: str, ids: Sequence[str],
                        keys: Sequence[str]) -> None:
        """Remove the tag ``keys`` from resources (absent keys are fine); ≤50 ids per call."""
        m = _models()
        region = self.resolve_region(region)
        if not ids or not keys:
            return
        for batch in chunks(ids, MAX_TAG_RESOURCE_IDS):
            self._do("UntagResources", region, m.UntagResourcesRequest(
                region_id=region, resource_type=resource_type, resource_id=batch, tag_key=list(keys)))

    def list_tag_resources(self, region: str | None, resource_type: str, ids: Sequence[str] | None = None,
                           tags: Mapping[str, str] | None = None) -> list[dict]:
        """``[{"ResourceId", "ResourceType", "TagKey", "TagValue"}]`` (every page; ≤50 ids per call)."""
        m = _models()
        region = self.resolve_region(region)
        if ids is not None and not ids:
            return []
        out: list[dict] = []
        for batch in (chunks(ids, MAX_TAG_RESOURCE_IDS) if ids else [None]):
            def make(token: str | None, batch=batch):
                return m.ListTagResourcesRequest(
                    region_id=region, resource_type=resource_type, resource_id=batch,
                    tag=tag_list(m.ListTagResourcesRequestTag, tags), next_token=token)

            out.extend(self._pages_by_token("ListTagResources", region, make, ("TagResources", "TagResource")))
        return out

    # -- network ----------------------------------------------------------------------------
    def default_vswitch(self, region: str | None = None, zone: str | None = None, *,
                        vswitch_id: str | None = None) -> dict:
        """The vSwitch ``vswitch_id``, else the region's default one (VPC SDK DescribeVSwitches ``IsDefault``, in
        ``zone`` if given): its record, with ``VSwitchId`` and ``VpcId``. ``ValueError`` naming what to pass when
        there is none."""
        from alibabacloud_vpc20160428 import models as vpc_models
        from alibabacloud_vpc20160428.client import Client as VpcClient

        region = self.resolve_region(region)
        vpc = VpcClient(self.openapi_config(region))
        resp = self.call("DescribeVSwitches", vpc.describe_vswitches, vpc_models.DescribeVSwitchesRequest(
            region_id=region, is_default=None if vswitch_id else True, v_switch_id=vswitch_id, zone_id=zone,
            page_size=50), region=region, service="VPC")
        vswitches = _items(_body(resp), "VSwitches", "VSwitch")
        if not vswitches:
            raise ValueError(f"vSwitch {vswitch_id} not found in {region}" if vswitch_id else
                             f"no default vSwitch in {region}{' zone ' + zone if zone else ''}: pass vswitch_id")
        return vswitches[0]

    def default_network(self, region: str | None = None, zone: str | None = None) -> tuple[str, str]:
        """``(vswitch_id, security_group_id)`` of the region's default VPC: :meth:`default_vswitch` and
        DescribeSecurityGroups of that VPC (a group named like ``default`` first). ``ValueError`` naming what to pass
        when the region has no default network."""
        region = self.resolve_region(region)
        vsw = self.default_vswitch(region, zone)
        groups = self.describe_security_groups(region, vpc_id=vsw["VpcId"])
        if not groups:
            raise ValueError(f"no security group in the default VPC {vsw['VpcId']} of {region}: pass "
                             f"security_group_id")
        default = next((g for g in groups if "default" in (g.get("SecurityGroupName") or "").lower()), groups[0])
        return vsw["VSwitchId"], default["SecurityGroupId"]

    # -- security groups ----------------------------------------------------------------------
    def describe_security_groups(self, region: str | None = None, *, vpc_id: str | None = None,
                                 tags: Mapping[str, str] | None = None) -> list[dict]:
        """Every security group of ``region`` (in ``vpc_id``, carrying all of ``tags``, if given), all pages."""
        m = _models()
        region = self.resolve_region(region)

        def make(page: int):
            return m.DescribeSecurityGroupsRequest(region_id=region, vpc_id=vpc_id, page_number=page, page_size=50,
                                                   tag=tag_list(m.DescribeSecurityGroupsRequestTag, tags))

        return self._pages_by_number("DescribeSecurityGroups", region, make, ("SecurityGroups", "SecurityGroup"), 50)

    def create_security_group(self, region: str | None, vpc_id: str, name: str, *, description: str = "",
                              tags: Mapping[str, str] | None = None, client_token: str | None = None) -> str:
        """CreateSecurityGroup (a basic group: no rule, so nothing comes in); returns its id."""
        m = _models()
        region = self.resolve_region(region)
        body = self._do("CreateSecurityGroup", region, m.CreateSecurityGroupRequest(
            region_id=region, vpc_id=vpc_id, security_group_name=name, description=description or None,
            security_group_type="normal", tag=tag_list(m.CreateSecurityGroupRequestTag, tags),
            client_token=client_token))
        return body["SecurityGroupId"]

    def authorize_security_group_egress(self, region: str | None, group_id: str,
                                        rules: Sequence[Mapping[str, Any]]) -> None:
        """AuthorizeSecurityGroupEgress with ``rules`` (``{"ip_protocol", "port_range", "dest_cidr_ip", "policy",
        "priority", "description"}`` each); a rule already there is no error."""
        m = _models()
        region = self.resolve_region(region)
        self._do("AuthorizeSecurityGroupEgress", region, m.AuthorizeSecurityGroupEgressRequest(
            region_id=region, security_group_id=group_id,
            permissions=[m.AuthorizeSecurityGroupEgressRequestPermissions(**dict(r)) for r in rules]))

    def delete_security_group(self, region: str | None, group_id: str) -> None:
        """DeleteSecurityGroup (refused with DependencyViolation while an instance is still in it)."""
        m = _models()
        region = self.resolve_region(region)
        self._do("DeleteSecurityGroup", region, m.DeleteSecurityGroupRequest(region_id=region,
                                                                             security_group_id=group_id))

    # -- Cloud Assistant --------------------------------------------------------------------
    def describe_cloud_assistant_status(self, region: str | None, instance_ids: Sequence[str]) -> dict[str, dict]:
        """``{instance_id: record}`` of DescribeCloudAssistantStatus (``CloudAssistantStatus`` "true"/"false",
        ``CloudAssistantVersion``, ``LastHeartbeatTime``...), 50 ids a call, every page."""
        m = _models()
        region = self.resolve_region(region)
        out: dict[str, dict] = {}
        for ids in chunks(instance_ids, 50):
            def make(token: str | None, ids=ids):
                return m.DescribeCloudAssistantStatusRequest(region_id=region, instance_id=ids, next_token=token,
                                                             max_results=50)

            for rec in self._pages_by_token("DescribeCloudAssistantStatus", region, make,
                                            ("InstanceCloudAssistantStatusSet", "InstanceCloudAssistantStatus")):
                out[rec["InstanceId"]] = rec
        return out

    def invoke_command(self, region: str | None, instance_ids: Sequence[str], command_id: str, *,
                       parameters: Mapping[str, Any] | None = None, client_token: str | None = None) -> str:
        """InvokeCommand of an existing command (yours, or a public one by name, e.g.
        ``ACS-ECS-ImageRepair-for-linux.sh``) on up to 100 instances; returns the InvokeId."""
        m = _models()
        region = self.resolve_region(region)
        body = self._do("InvokeCommand", region, m.InvokeCommandRequest(
            region_id=region, command_id=command_id, instance_id=list(instance_ids), parameters=dict(parameters)
            if parameters else None, client_token=client_token))
        return body["InvokeId"]

    def install_cloud_assistant(self, region: str | None, instance_ids: Sequence[str]) -> None:
        """InstallCloudAssistant on instances without the agent (it takes effect after a restart)."""
        m = _models()
        region = self.resolve_region(region)
        for ids in chunks(instance_ids, 50):
            self._do("InstallCloudAssistant", region, m.InstallCloudAssistantRequest(region_id=region,
                                                                                     instance_id=ids))

    def run_command(self, region: str | None, instance_ids: Sequence[str], content: str,
                    type: str = "RunShellScript", parameters: Mapping[str, Any] | None = None,
                    timeout: int | None = None, name: str | None = None, client_token: str | None = None, *,
                    working_dir: str | None = None, username: str | None = None,
                    content_encoding: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """RunCommand (Cloud Assistant) on up to 100 instances; returns the InvokeId.

        :param type: ``RunShellScript``, ``RunPythonScript``, ``RunPowerShellScript``, ``RunBatScript``
        :param parameters: values for ``{{name}}`` placeholders in ``content`` (enables custom parameters)
        :param timeout: seconds before the command is stopped on the instance
        """
        m = _models()
        region = self.resolve_region(region)
        ids = list(dict.fromkeys(instance_ids))
        if not ids:
            raise ValueError("run_command needs at least one instance id")
        if len(ids) > MAX_IDS_PER_CALL:
            raise ValueError(f"run_command takes at most {MAX_IDS_PER_CALL} instances per call, got {len(ids)}")
        body = self._do("RunCommand", region, m.RunCommandRequest(
            region_id=region, instance_id=ids, command_content=content, type=type,
            parameters=dict(parameters) if parameters else None, enable_parameter=True if parameters else None,
            timeout=timeout, name=name, client_token=client_token, working_dir=working_dir, username=username,
            content_encoding=content_encoding, tag=tag_list(m.RunCommandRequestTag, tags)))
        return body["InvokeId"]

    def _invocation_results_request(self, region: str, invoke_id: str, instance_id: str | None):
        m = _models()

        def make(token: str | None):
            return m.DescribeInvocationResultsRequest(region_id=region, invoke_id=invoke_id,
                                                      instance_id=instance_id, max_results=50, next_token=token)

        return make

    def describe_invocation_results(self, region: str | None, invoke_id: str,
                                    instance_id: str | None = None) -> list[dict]:
        """Per-instance results of an invocation (all pages): ``[{"InstanceId", "InvocationStatus",
        "ExitCode", "Output" (base64), "StartTime", "FinishedTime", ...}]``."""
        region = self.resolve_region(region)
        return self._pages_by_token("DescribeInvocationResults", region,
                                    self._invocation_results_request(region, invoke_id, instance_id),
                                    ("Invocation", "InvocationResults", "InvocationResult"),
                                    ("Invocation", "NextToken"))

    async def describe_invocation_results_async(self, region: str | None, invoke_id: str,
                                                instance_id: str | None = None,
                                                client: EcsClient | None = None) -> list[dict]:
        await self.asettings()
        region = self.resolve_region(region)
        client = client or self.get_async_client(region)
        return await self._apages_by_token(client, "DescribeInvocationResults", region,
                                           self._invocation_results_request(region, invoke_id, instance_id),
                                           ("Invocation", "InvocationResults", "InvocationResult"),
                                           ("Invocation", "NextToken"))

    def _invocations_request(self, region: str, invoke_id: str | None, instance_id: str | None,
                             include_output: bool):
        m = _models()

        def make(token: str | None):
            return m.DescribeInvocationsRequest(region_id=region, invoke_id=invoke_id, instance_id=instance_id,
                                                include_output=include_output, max_results=50, next_token=token)

        return make

    def describe_invocations(self, region: str | None, invoke_id: str | None = None, *,
                             instance_id: str | None = None, include_output: bool = False) -> list[dict]:
        """``[{"InvokeId", "InvocationStatus", "InvokeInstances": {"InvokeInstance": [...]}, ...}]``."""
        region = self.resolve_region(region)
        return self._pages_by_token("DescribeInvocations", region,
                                    self._invocations_request(region, invoke_id, instance_id, include_output),
                                    ("Invocations", "Invocation"))

    async def describe_invocations_async(self, region: str | None, invoke_id: str | None = None, *,
                                         instance_id: str | None = None, include_output: bool = False,
                                         client: EcsClient | None = None) -> list[dict]:
        await self.asettings()
        region = self.resolve_region(region)
        client = client or self.get_async_client(region)
        return await self._apages_by_token(client, "DescribeInvocations", region,
                                           self._invocations_request(region, invoke_id, instance_id,
                                                                     include_output),
                                           ("Invocations", "Invocation"))


def _snake(action: str) -> str:
    """``DescribeImages`` -> ``describe_images`` (the SDK's method names)."""
    out = []
    for i, ch in enumerate(action):
        if ch.isupper() and i and not action[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)

