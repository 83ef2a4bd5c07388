"""The run report: outcome, escaping, and rows for every missing result."""

from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic.report import Report, ReportRow

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


def test_achieved_rpo_is_the_age_of_the_newest_verified_copy_per_instance_and_region():
    from aliyun_ops.logic.report import achieved_rpo

    now = 1_800_000_000.0
    images = [
        {"instance_id": "i-a", "region": "cn-shanghai", "created": now - 3 * 3600, "verified": True},
        {"instance_id": "i-a", "region": "cn-shanghai", "created": now - 1 * 3600, "verified": False},
        {"instance_id": "i-a", "region": "cn-shanghai", "created": now - 30 * 3600, "verified": True},
        {"instance_id": "i-a", "region": "cn-shenzhen", "created": now - 50 * 3600, "verified": True},
        {"instance_id": "i-b", "region": "cn-shanghai", "created": None, "verified": True},
        {"instance_id": "", "region": "cn-shanghai", "created": now, "verified": True},
    ]
    assert achieved_rpo(images, now) == {("i-a", "cn-shanghai"): 3.0, ("i-a", "cn-shenzhen"): 50.0}
