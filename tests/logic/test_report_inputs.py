"""How every report reads its inputs: ``results`` first, the return value second, and "unknown" (never "none")
when a task left neither."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.pipelines.report_inputs import describe_rows, failed_rows, task_results, unknown


class FakeTI:
    """XComs by (task_id, key); key None is the return value."""

    def __init__(self, xcoms: dict) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str, key: str | None = "return_value"):
        return self.xcoms.get((task_ids, None if key in (None, "return_value") else key))


def test_results_pushed_by_a_failed_task_are_read():
    ti = FakeTI({("sweep", "results"): [{"instance_id": "i-1", "status": "failed", "reason": "boom"}]})
    rows = task_results(ti, "sweep")
    assert rows == [{"instance_id": "i-1", "status": "failed", "reason": "boom"}]
    assert failed_rows(rows) == rows


def test_the_return_value_is_read_when_no_results_were_pushed():
    ti = FakeTI({("sweep", None): [{"instance_id": "i-1", "status": "success"}]})
    assert task_results(ti, "sweep") == [{"instance_id": "i-1", "status": "success"}]


def test_a_task_that_left_nothing_is_unknown_not_none():
    rows = task_results(FakeTI({}), "sweep")
    assert rows is None
    assert describe_rows(rows, "sweep", lambda r: r["instance_id"], empty="none") == unknown("sweep")
    assert describe_rows([], "sweep", lambda r: r["instance_id"], empty="none") == "none"


def test_a_mapped_task_s_rows_are_flattened_and_empty_indexes_skipped():
    ti = FakeTI({("replace", "results"): [[{"instance_id": "i-1"}], None, [{"instance_id": "i-2"}]]})
    assert [r["instance_id"] for r in task_results(ti, "replace")] == ["i-1", "i-2"]


@given(st.lists(st.fixed_dictionaries({"instance_id": st.text(min_size=1, max_size=5),
                                       "status": st.sampled_from(["success", "failed", "skipped"])}), max_size=8))
def test_every_row_is_read_and_exactly_the_failed_ones_are_failed(rows):
    got = task_results(FakeTI({("t", "results"): rows}), "t")
    assert got == rows
    assert failed_rows(got) == [r for r in rows if r["status"] == "failed"]
