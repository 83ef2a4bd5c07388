"""Rolling waves with OOS ``max_errors`` (``next_wave``), property-tested: pure bookkeeping, no API call."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic.budget import ErrorBudget
from aliyun_ops.logic.outcome import FAILED, SKIPPED, SUCCESS
from aliyun_ops.operators.ecs_instances import next_wave, plan_waves, result


class _Log:
    def info(self, *args):
        pass


@given(n=st.integers(0, 30), concurrency=st.one_of(st.integers(1, 12), st.sampled_from(["10%", "50%", "100%"])),
       max_errors=st.one_of(st.integers(0, 5), st.sampled_from(["0%", "20%", "50%"])),
       fails=st.lists(st.booleans(), min_size=30, max_size=30))
def test_every_instance_ends_with_one_result_and_no_wave_starts_past_the_budget(n, concurrency, max_errors, fails):
    items = [{"instance_id": f"i-{k:04d}", "region": "cn-hangzhou", "status": "Stopped"} for k in range(n)]
    state = plan_waves(items, {}, list(items), concurrency, "Running", _Log())
    allowed = ErrorBudget.of(max_errors, n).allowed
    started: list[str] = []
    while (wave := next_wave(state, max_errors)) is not None:
        failed_so_far = sum(1 for r in state["results"].values() if r["status"] == FAILED)
        assert failed_so_far <= allowed, "a wave started although failures exceeded max_errors"
        for item in wave:
            started.append(item["instance_id"])
            outcome = FAILED if fails[int(item["instance_id"][2:])] else SUCCESS
            state["results"][item["instance_id"]] = result(item, outcome, "Running")
    assert started == [i["instance_id"] for i in items][:len(started)], "waves ran out of order"
    assert set(state["results"]) == {i["instance_id"] for i in items}, "an instance was lost"
    never = [r for iid, r in state["results"].items() if iid not in started]
    assert all(r["status"] == SKIPPED and r["reason"].startswith("not started") for r in never)
    if never:
        assert sum(1 for r in state["results"].values() if r["status"] == FAILED) > allowed
