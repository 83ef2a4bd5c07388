import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.logic import naming
from aliyun_ops.logic import provenance as pv

VALID_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fff][0-9A-Za-z._:\-\u4e00-\u9fff]{1,127}$")


@given(st.text(max_size=400))
def test_sanitized_names_are_always_valid(raw):
    name = naming.sanitize_image_name(raw)
    assert VALID_NAME.match(name), name
    assert not name.lower().startswith(("http:", "https:"))
    assert naming.sanitize_image_name(raw) == name  # deterministic


@given(st.lists(st.text(max_size=50), min_size=1, max_size=5))
def test_client_token_is_stable_short_ascii(parts):
    token = naming.client_token(*parts)
    assert token == naming.client_token(*parts)
    assert len(token) <= 64 and token.isascii()


def test_client_token_differs_per_item():
    assert naming.client_token("d", "r", "i-1") != naming.client_token("d", "r", "i-2")


def test_render_template():
    name = naming.render_image_name("backup-{instance_name}-{date}", {"instance_name": "web 1", "date": "20261122"})
    assert name == "backup-web-1-20261122"


@pytest.mark.parametrize("template", ["", "{nope}", "backup-{instance_id", "x-{0}"])
def test_bad_templates_rejected(template):
    with pytest.raises(ValueError):
        naming.validate_name_template(template)


@pytest.mark.parametrize("key", ["aliyun-x", "Aliyun:y", "acs:foo", "", "k" * 129, "http://x"])
def test_reserved_or_bad_tag_keys_rejected(key):
    with pytest.raises(ValueError):
        pv.validate_tags({key: "v"})


def test_too_many_tags_rejected():
    with pytest.raises(ValueError, match="at most 20"):
        pv.validate_tags({f"k{i}": "v" for i in range(21)})


@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9\-]{0,20}", fullmatch=True), st.text(max_size=20), max_size=8))
def test_our_tags_win_and_are_valid(user):
    ours = pv.provenance_tags(source_instance="i-1", run_id="scheduled__2026-01-01T02:00:00+08:00")
    user = {k: v for k, v in user.items() if not k.startswith("aliyun")}
    user = {k: v.replace("acs:", "") for k, v in user.items() if "http" not in v}
    merged = pv.merge_tags({**user, pv.MANAGED_BY_KEY: "forged"}, ours)
    assert merged[pv.MANAGED_BY_KEY] == pv.MANAGED_BY_VALUE
    assert all(not k.startswith(("aliyun", "acs:")) for k in merged)


def test_tags_from_api_shapes():
    assert pv.tags_from_api({"Tag": [{"TagKey": "a", "TagValue": "1"}]}) == {"a": "1"}
    assert pv.tags_from_api([{"Key": "a", "Value": "1"}]) == {"a": "1"}
    assert pv.tags_from_api(None) == {}
