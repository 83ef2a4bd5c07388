import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_ops.actions.pool import errors_exceeded, run_batch


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), max_size=25), st.integers(min_value=1, max_value=6), st.integers(min_value=0, max_value=5))
def test_every_item_gets_exactly_one_result(outcomes, concurrency, max_errors):
    items = list(enumerate(outcomes))

    def act(item):
        if not item[1]:
            raise RuntimeError(f"boom {item[0]}")
        return item[0]

    results = run_batch(items, act, key=lambda i: f"k{i[0]}", concurrency=concurrency, max_errors=max_errors)
    assert [r.key for r in results] == [f"k{i}" for i, _ in items]
    for (i, ok), r in zip(items, results, strict=True):
        assert r.status in ("success", "failed", "skipped")
        if r.status == "success":
            assert ok and r.value == i
        if r.status == "failed":
            assert not ok and "boom" in r.error
    failed = sum(r.status == "failed" for r in results)
    # never more failures than the budget plus what was already running when it ran out
    assert failed <= max_errors + concurrency
    if sum(not ok for ok in outcomes) <= max_errors:
        assert all(r.status != "skipped" for r in results)


def test_concurrency_is_bounded():
    running, peak, lock = [0], [0], threading.Lock()
    gate = threading.Event()

    def act(_):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        gate.wait(0.05)
        with lock:
            running[0] -= 1

    run_batch(list(range(20)), act, key=str, concurrency=3)
    assert peak[0] <= 3


def test_skip_predicate_and_budget_check():
    results = run_batch([1, 2, 3], lambda x: x, key=str, skip=lambda x: "already running" if x == 2 else None)
    assert [r.status for r in results] == ["success", "skipped", "success"]
    assert results[1].error == "already running"
    assert not errors_exceeded(results, 0)


def test_item_skipped_is_reported_and_not_counted_as_an_error():
    from aliyun_ops.exceptions import ItemSkipped

    def act(i):
        if i % 2:
            raise ItemSkipped(f"{i} in use")
        return i

    out = run_batch(list(range(6)), act, key=str, concurrency=1, max_errors=0)
    assert [r.status for r in out] == ["success", "skipped"] * 3      # max_errors=0 and still all done
    assert out[1].error == "1 in use"
