from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic.report import Report, ReportRow
from aliyun_ops.logic.retention import DAY, ImageFacts, RetentionPolicy, plan

NOW = 1_800_000_000.0


@st.composite
def image_sets(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    images = []
    for i in range(n):
        managed = draw(st.booleans())
        tags = pv.provenance_tags(source_instance=draw(st.sampled_from(["i-a", "i-b", "i-c"]))) if managed else {}
        if managed and draw(st.booleans()):
            tags[pv.SOURCE_IMAGE] = "m-src"
            if draw(st.booleans()):
                tags[pv.COPY_STATUS] = pv.COPY_COMPLETE
        images.append(ImageFacts(
            image_id=f"m-{i:03d}", region=draw(st.sampled_from(["cn-hangzhou", "cn-beijing"])),
            created_at=NOW - draw(st.floats(min_value=0, max_value=60)) * DAY,
            status=draw(st.sampled_from(["Available", "Available", "Creating", "CreateFailed"])),
            tags=tags, in_use=draw(st.booleans()), shared=draw(st.booleans())))
    return images


@settings(max_examples=300)
@given(image_sets(), st.integers(min_value=1, max_value=30), st.integers(min_value=1, max_value=4), st.booleans())
def test_retention_never_deletes_the_wrong_image(images, days, keep_last, delete_failed):
    policy = RetentionPolicy(retention_days=days, keep_last=keep_last, delete_failed=delete_failed)
    decisions = {d.image_id: d for d in plan(images, policy, NOW)}
    assert set(decisions) == {i.image_id for i in images}          # every image gets a decision
    by_id = {i.image_id: i for i in images}
    for image_id, d in decisions.items():
        img = by_id[image_id]
        if d.delete:
            assert pv.is_managed(img.tags)                         # never unmanaged
            assert not img.in_use and not img.shared              # never in use or shared
            if img.status == "Available":
                assert img.created_at <= NOW - days * DAY          # never too young
            else:
                assert img.status == "CreateFailed" and delete_failed
    # the newest keep_last complete backups of each (instance, region) survive
    groups = {}
    for img in images:
        if pv.is_managed(img.tags) and img.complete:
            groups.setdefault((img.source_instance, img.region), []).append(img)
    for members in groups.values():
        members.sort(key=lambda m: (m.created_at, m.image_id), reverse=True)
        for kept in members[:keep_last]:
            assert not decisions[kept.image_id].delete


rows = st.lists(st.builds(ReportRow, instance_id=st.from_regex(r"i-[a-z]{3}", fullmatch=True),
                          instance_name=st.text(max_size=10),
                          status=st.sampled_from(["success", "failed", "skipped"]),
                          reason=st.text(max_size=30)), max_size=20)


@given(rows)
def test_report_outcome_and_html_escaping(items):
    report = Report.build(items)
    c = report.counts
    assert sum(c.values()) == len(items)
    if not items:
        assert report.outcome == "empty"
    elif c["failed"] == 0:
        assert report.outcome == "success"
    elif c["success"] == 0:
        assert report.outcome == "failure"
    else:
        assert report.outcome == "partial"
    page = report.to_html()
    assert "<script" not in page.replace("&lt;script", "")
    assert page.count("<tr") == len(items) + 1
    assert len(report.to_text().splitlines()) == len(items) + 3


def test_backup_rows_explain_every_missing_result():
    from aliyun_ops.logic.report import backup_rows

    selected = [{"instance_id": i, "instance_name": i, "region": "cn-hangzhou"} for i in ("i-a", "i-b", "i-c")]
    selected.append({"instance_id": "i-gone", "status": "missing"})
    created = [{"instance_id": "i-a", "image_id": "m-a", "status": "success", "size_gib": 40, "seconds": 5},
               {"instance_id": "i-b", "image_id": "m-b", "status": "failed", "reason": "CreateFailed"}]
    copies = [{"source_image_id": "m-a", "destination_region": "cn-shanghai", "image_id": "m-a2",
               "status": "success"}]
    prepared = [{"instance_id": "i-c", "status": "failed", "reason": "exit code 1"}]
    rows = backup_rows(selected, created, copies, ["cn-shanghai", "cn-shenzhen"], prepared=prepared)
    by = {(r.instance_id, r.destination_region): r for r in rows}
    assert len(rows) == 8
    assert by[("i-a", "cn-shanghai")].status == "success" and by[("i-a", "cn-shanghai")].copy_image_id == "m-a2"
    assert "copy was not made" in by[("i-a", "cn-shenzhen")].reason
    assert by[("i-b", "cn-shanghai")].reason == "image: CreateFailed"
    assert "preparation failed: exit code 1" in by[("i-c", "cn-shanghai")].reason
    assert by[("i-gone", "cn-shanghai")].reason == "instance not found"
    assert all(r.status == "failed" for k, r in by.items() if k != ("i-a", "cn-shanghai"))
