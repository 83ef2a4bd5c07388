"""One rule per identifier, shared by the DAG forms (JSON schema) and the operators (checks before any call)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic import ids
from aliyun_ops.operators.rds import CreateRdsBackupOperator


@given(st.sampled_from(sorted(ids.PATTERNS)), st.text(max_size=30))
def test_form_pattern_and_operator_check_agree(kind, value):
    form_accepts = re.search(ids.pattern(kind), value) is not None    # what JSON schema's "pattern" does
    try:
        ids.check(kind, value)
        checked = True
    except ValueError as exc:
        checked = False
        assert kind.split("_")[0] in str(exc).lower() or "id" in str(exc)
    assert form_accepts == checked


@pytest.mark.parametrize("kind, good, bad", [
    ("rds_instance", "pgm-bp1abc", "xx-bp1abc"),
    ("instance", "i-bp1abc", "m-bp1abc"),
    ("region", "ap-southeast-1", "Hangzhou"),
])
def test_examples(kind, good, bad):
    assert ids.check(kind, good) == good
    with pytest.raises(ValueError):
        ids.check(kind, bad)


def test_rds_operator_takes_what_the_form_takes():
    CreateRdsBackupOperator(task_id="b", instance_id="pgm-bp1abc").validate()    # PostgreSQL ids too
