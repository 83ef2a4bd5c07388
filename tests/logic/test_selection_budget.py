import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic.budget import ErrorBudget, resolve_count
from aliyun_ops.logic.selection import Criteria, chunks, select

statuses = st.sampled_from(["Running", "Stopped", "Starting"])
instances = st.lists(
    st.fixed_dictionaries({
        "InstanceId": st.from_regex(r"i-[a-z0-9]{4}", fullmatch=True),
        "InstanceName": st.sampled_from(["web-1", "web-2", "db-1", "cache"]),
        "RegionId": st.sampled_from(["cn-hangzhou", "cn-beijing"]),
        "Status": statuses,
        "Tags": st.fixed_dictionaries({"Tag": st.lists(st.fixed_dictionaries(
            {"TagKey": st.sampled_from(["backup", "env"]), "TagValue": st.sampled_from(["daily", "prod"])}),
            max_size=2)}),
    }),
    max_size=30,
)


@given(instances, st.sampled_from([("Running",), ("Running", "Stopped"), ()]))
def test_selection_partitions_and_respects_criteria(items, wanted):
    criteria = Criteria(regions=("cn-hangzhou", "cn-beijing"), tags={"backup": "daily"}, statuses=wanted)
    result = select(items, criteria)
    unique = {i["InstanceId"] for i in items}
    got = [r["instance_id"] for r in result.selected] + [r["instance_id"] for r in result.excluded]
    assert sorted(got) == sorted(unique)          # nothing dropped, nothing twice
    for row in result.selected:
        assert row["tags"].get("backup") == "daily"
        assert not wanted or row["status"] in wanted
    assert all(r["reason"] for r in result.excluded)


def test_missing_ids_reported():
    criteria = Criteria(regions=("cn-hangzhou",), instance_ids=("i-aaaa", "i-zzzz"))
    result = select([{"InstanceId": "i-aaaa", "RegionId": "cn-hangzhou", "Status": "Running"}], criteria)
    assert [r["instance_id"] for r in result.selected] == ["i-aaaa"]
    assert result.missing_ids == ["i-zzzz"]


@pytest.mark.parametrize("kwargs", [
    {"regions": ()}, {"regions": ("r",)}, {"regions": ("r",), "tags": {"a": "b"}, "statuses": ("Up",)},
    {"regions": ("r",), "instance_ids": ("x-1",)},
])
def test_bad_criteria(kwargs):
    with pytest.raises(ValueError):
        Criteria(**kwargs).validate()


@given(st.lists(st.integers(), max_size=300), st.integers(min_value=1, max_value=120))
def test_chunks_cover_in_order(items, size):
    parts = chunks(items, size)
    assert [x for p in parts for x in p] == items
    assert all(1 <= len(p) <= size for p in parts)


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=100))
def test_percent_budget_bounds(total, pct):
    n = resolve_count(f"{pct}%", total, name="max_errors")
    assert 0 <= n <= total


@pytest.mark.parametrize("value", ["x", "-1", "150%", True, 1.5, "%"])
def test_bad_budget_values(value):
    with pytest.raises(ValueError):
        resolve_count(value, 10, name="max_errors")


def test_budget_semantics_match_oos():
    budget = ErrorBudget.of(0, total=5)
    assert not budget.exhausted
    budget.fail()
    assert budget.exhausted                       # MaxErrors 0: the first failure stops
    b2 = ErrorBudget.of("50%", total=4)           # 2 allowed
    b2.fail(2)
    assert not b2.exhausted
    b2.fail()
    assert b2.exhausted
