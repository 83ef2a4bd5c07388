"""The reuse DAG (tests/dag_files/reuse_image_backup.py) end to end under dag.test() against the emulator."""

from __future__ import annotations

from aliyun_ops.logic import provenance as pv

SRC, DST = "cn-hangzhou", "cn-shanghai"


def _images(ecs_client, region):
    from alibabacloud_ecs20140526 import models

    body = ecs_client(region).describe_images(models.DescribeImagesRequest(
        region_id=region, image_owner_alias="self", page_size=100,
        status="Creating,Waiting,Available,UnAvailable,CreateFailed,Deprecated")).body.to_map()
    return body.get("Images", {}).get("Image", [])


def test_reuse_dag_creates_copies_and_deletes_sources(run_dag, emulator, ecs_client):
    ids = emulator.admin.load_fleet({"instances": [
        {"region": SRC, "name": "app-{n}", "count": 3, "tags": {"backup": "reuse"}},
        {"region": SRC, "name": "other", "tags": {"backup": "no"}},
    ]})["instances"]
    tagged = set(ids[:3])

    dag_run = run_dag("reuse_image_backup")
    assert str(dag_run.state).endswith("success"), dag_run.state

    copies = _images(ecs_client, DST)
    assert len(copies) == 3
    for image in copies:
        tags = pv.tags_from_api(image["Tags"])
        assert image["Status"] == "Available"
        assert tags[pv.COPY_STATUS] == pv.COPY_COMPLETE and tags[pv.SOURCE_REGION] == SRC
        assert tags[pv.MANAGED_BY_KEY] == pv.MANAGED_BY_VALUE and tags[pv.POLICY] == "reuse"
        assert tags["owner"] != "" if "owner" in tags else True
    assert {pv.tags_from_api(i["Tags"])[pv.SOURCE_INSTANCE] for i in copies} == tagged
    # the source images were deleted after their copies succeeded; nothing was made for the untagged one
    assert _images(ecs_client, SRC) == []
    calls = emulator.admin.calls()["counters"]
    assert calls["ecs:CreateImage"]["calls"] == 3 and calls["ecs:CopyImage"]["calls"] == 3
    assert calls["ecs:DeleteImage"]["calls"] == 3
