"""The retention planner: generated fleets (10,000 in the ci profile) and worked examples of every rule."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_ops.logic import policies as pol
from aliyun_ops.logic import provenance as pv
from aliyun_ops.logic import retention as rt
from aliyun_ops.logic.retention import DAY, ImageFacts, RetentionPolicy, plan

NOW = 1_800_000_000.0
FLEETS = 10_000 if settings.get_current_profile_name() == "ci" else 500
POLICIES = ["nightly", "monthly"]


INSTANCES = ["i-a", "i-b", "i-c", None]
RETENTION_TAGS = ["3", "30", "90", "365", "abc", "-1", "0", "99999"]
STATUSES = ["Available"] * 5 + ["CreateFailed", "Creating", "Waiting", "Deprecated"]


def decode_image(i: int, code: int) -> ImageFacts:
    """One generated image from one integer: a draw per field made 10,000 fleets take minutes, so Hypothesis
    draws (and shrinks) one seed per image and the fields come from it, with the odd cases at fixed rates."""
    rng = random.Random(code)

    def odd(rate: float) -> bool:
        return rng.random() < rate

    tags: dict[str, str] = {}
    if not odd(0.1):
        tags = pv.provenance_tags(source_instance=rng.choice(INSTANCES), policy=POLICIES[odd(0.2)])
        if odd(0.3):
            tags[pv.RETENTION_DAYS] = rng.choice(RETENTION_TAGS)
        if odd(0.2):
            tags[pv.VERIFIED_AT] = "2026-11-01T00:00:00Z"
        if odd(0.25):
            tags[pv.SOURCE_IMAGE] = f"m-{rng.randrange(30):03d}"
            if odd(0.5):
                tags[pv.COPY_STATUS] = pv.COPY_COMPLETE
    age = rng.randrange(4001) / 10                      # tenths of a day: exact deadlines occur
    return ImageFacts(image_id=f"m-{i:03d}", region=rng.choice(["cn-hangzhou", "cn-beijing"]),
                      created_at=None if odd(0.05) else NOW - age * DAY, status=rng.choice(STATUSES), tags=tags,
                      in_use=odd(0.08), shared=odd(0.08))


@st.composite
def fleets(draw) -> list[ImageFacts]:
    """Managed and unmanaged images of two policies, three instances (or none), two regions, odd tags, unreadable
    times, and sometimes one image listed twice (as a page that shifted during listing would)."""
    size = draw(st.integers(0, 30))
    codes = draw(st.lists(st.integers(0, 2**64), min_size=size, max_size=size))
    images = [decode_image(i, code) for i, code in enumerate(codes)]
    if images and draw(st.booleans()):
        images.append(replace(images[draw(st.integers(0, len(images) - 1))]))
    return images


policies = st.builds(
    RetentionPolicy, retention_days=st.integers(1, 60), keep_last=st.integers(1, 4), keep_daily=st.integers(0, 7),
    keep_weekly=st.integers(0, 5), keep_monthly=st.integers(0, 12), delete_failed=st.booleans(),
    policy=st.sampled_from([None, None, *POLICIES]), max_delete_fraction=st.sampled_from([0.25, 0.5, 1.0]),
    timezone=st.sampled_from(["Asia/Shanghai", "UTC"]))


def newest(members: list[ImageFacts]) -> ImageFacts | None:
    ranked = sorted((m for m in members if m.created_at is not None),
                    key=lambda m: (m.created_at, m.image_id), reverse=True)
    return ranked[0] if ranked else None


def check_never_deletes_the_wrong_image(images: list[ImageFacts], policy: RetentionPolicy, p: rt.RetentionPlan):
    by_id = {i.image_id: i for i in images}
    assert sorted(d.image_id for d in p.decisions) == sorted(by_id)   # one decision per image, listed twice or not
    copying = {i.tags.get(pv.SOURCE_IMAGE) for i in images if i.status in ("Creating", "Waiting")}
    for d in p.decisions:
        img = by_id[d.image_id]
        if not d.delete:
            assert d.reason and d.rule
            continue
        assert pv.is_managed(img.tags) and not img.in_use and not img.shared
        assert policy.policy in (None, img.tags.get(pv.POLICY))
        assert img.image_id not in copying and img.created_at is not None
        assert img.status == "Available" or (img.status == "CreateFailed" and policy.delete_failed)
        if img.status == "Available":
            own = int(img.tags.get(pv.RETENTION_DAYS, "0"))            # a bad tag would have raised: kept
            assert NOW - img.created_at > max(policy.retention_days, own) * DAY
    groups: dict[str, list[ImageFacts]] = defaultdict(list)
    for img in images:
        if pv.is_managed(img.tags) and img.complete:
            groups[img.group].append(img)
    deleted = {d.image_id for d in p.decisions if d.delete}
    for members in groups.values():
        ranked = sorted((m for m in members if m.created_at is not None),
                        key=lambda m: (m.created_at, m.image_id), reverse=True)
        assert not deleted & {m.image_id for m in ranked[: policy.keep_last]}
        top_verified = newest([m for m in members if m.verified])
        assert top_verified is None or top_verified.image_id not in deleted


def check_fraction_guard(p: rt.RetentionPlan, policy: RetentionPolicy):
    per_region: dict[str, int] = defaultdict(int)
    for d in p.deletions(approved=False):
        per_region[d.region] += 1
    for region, n in per_region.items():
        assert n <= policy.max_delete_fraction * p.regions[region].managed


@settings(max_examples=FLEETS, deadline=None)
@given(fleets(), policies)
def test_planner_never_deletes_the_wrong_image_and_is_idempotent(images, policy):
    p = plan(images, policy, NOW)
    check_never_deletes_the_wrong_image(images, policy, p)
    check_fraction_guard(p, policy)
    assert rt.RetentionPlan.from_dict(p.to_dict()) == p
    gone = {d.image_id for d in p.deletions(approved=True)}
    again = plan([i for i in images if i.image_id not in gone], policy, NOW)
    assert again.deletions(approved=True) == []


# -- worked examples --------------------------------------------------------------------------------
def img(image_id: str, age_days: float | None, *, instance: str | None = "i-1", policy: str = "nightly",
        region: str = "cn-hangzhou", status: str = "Available", **tags: str) -> ImageFacts:
    t = pv.provenance_tags(source_instance=instance, policy=policy)
    t.update({k.replace("_", "-") if k != "verified_at" else pv.VERIFIED_AT: v for k, v in tags.items()})
    return ImageFacts(image_id, region, None if age_days is None else NOW - age_days * DAY, status, t)


def decided(images, **policy) -> dict[str, rt.Decision]:
    return {d.image_id: d for d in plan(images, RetentionPolicy(**policy), NOW).decisions}


def test_an_image_tag_of_90_days_outlives_a_7_day_policy():
    d = decided([img("m-new", 1), img("m-pre-upgrade", 30, **{"ops:retention-days": "90"}), img("m-old", 30)],
                retention_days=7, max_delete_fraction=1.0)
    assert not d["m-pre-upgrade"].delete and d["m-pre-upgrade"].rule == rt.OWN_TAG
    assert d["m-old"].delete and d["m-old"].rule == rt.EXPIRED


@pytest.mark.parametrize("bad", ["abc", "-5", "0", "1e9", "99999", " "])
def test_a_malformed_retention_tag_fails_closed(bad):
    d = decided([img("m-new", 1), img("m-bad", 400, **{"ops:retention-days": bad})], retention_days=7,
                max_delete_fraction=1.0)
    assert not d["m-bad"].delete
    assert d["m-bad"].rule == rt.GUARD or bad.strip() == ""


def test_unreadable_creation_time_is_kept_and_never_counts_as_newest():
    d = decided([img("m-unknown", None), img("m-a", 1), img("m-b", 20)], retention_days=7, keep_last=1,
                max_delete_fraction=1.0)
    assert not d["m-unknown"].delete and "unreadable" in d["m-unknown"].reason
    assert d["m-a"].rule == rt.NEWEST and d["m-b"].delete


def test_images_without_a_source_instance_are_each_their_own_group():
    d = decided([img("m-golden-1", 300, instance=None), img("m-golden-2", 200, instance=None)], retention_days=7)
    assert not d["m-golden-1"].delete and not d["m-golden-2"].delete
    assert d["m-golden-1"].group != d["m-golden-2"].group


def test_groups_are_per_policy_instance_and_region():
    images = [img("m-n1", 1), img("m-n2", 30), img("m-m1", 30, policy="monthly"),
              img("m-dr", 30, region="cn-shanghai")]
    d = decided(images, retention_days=7, max_delete_fraction=1.0)
    assert d["m-n2"].delete
    assert d["m-m1"].rule == rt.NEWEST and d["m-dr"].rule == rt.NEWEST


def test_gfs_keeps_the_newest_of_each_day_week_and_month_over_100_nights():
    zone = ZoneInfo("Asia/Shanghai")
    images = [img(f"m-{n:03d}", n + 0.1) for n in range(100)]            # one backup a night, newest first
    p = plan(images, RetentionPolicy(retention_days=7, keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=3,
                                     max_delete_fraction=1.0), NOW)
    kept = {d.image_id: d for d in p.decisions if not d.delete}

    def local(d): return datetime.fromtimestamp(d.created_at, zone)
    months = {local(d).strftime("%Y-%m") for d in kept.values() if d.rule == rt.MONTHLY}
    weeks = {local(d).isocalendar()[:2] for d in kept.values() if d.rule == rt.WEEKLY}
    all_months = sorted({local(d).strftime("%Y-%m") for d in p.decisions}, reverse=True)
    assert len(months) + (all_months[0] not in months) == 3          # the current month may be kept as newest
    assert 0 < len(weeks) <= 4
    for d in kept.values():                                           # each kept monthly is its month's newest
        if d.rule == rt.MONTHLY:
            same = [x for x in p.decisions if local(x).strftime("%Y-%m") == local(d).strftime("%Y-%m")]
            assert max(same, key=lambda x: x.created_at).image_id == d.image_id
    assert len(kept) < 20 and all(d.rule in (rt.NEWEST, rt.LAST, rt.DAILY, rt.WEEKLY, rt.MONTHLY, rt.AGE)
                                  for d in kept.values())


def test_the_fraction_guard_holds_a_region_that_would_lose_most_of_its_backups():
    images = [img(f"m-{n}", 10 + n) for n in range(10)] + [img("m-dr1", 1, region="cn-shanghai"),
                                                           img("m-dr2", 30, region="cn-shanghai")]
    p = plan(images, RetentionPolicy(retention_days=7, keep_last=1), NOW)
    assert p.held_regions == ["cn-hangzhou"] and p.regions["cn-hangzhou"].deleting == 9
    assert [d.image_id for d in p.deletions()] == ["m-dr2"]          # 1 of 2 is not above one half
    assert len(p.deletions(approved=True)) == 10


def test_a_copy_in_progress_protects_its_source_and_newest_verified_is_kept():
    images = [img("m-src", 40), img("m-new", 1), img("m-verified", 20, verified_at="2026-11-01"),
              img("m-copy", 0, region="cn-shanghai", status="Creating", **{"ops:source-image": "m-src"})]
    d = decided(images, retention_days=7, max_delete_fraction=1.0)
    assert "copy" in d["m-src"].reason and not d["m-src"].delete
    assert d["m-verified"].rule == rt.VERIFIED


@pytest.mark.parametrize("field,value", [("retention_days", 0), ("keep_last", 0), ("keep_weekly", -1),
                                         ("max_delete_fraction", 0), ("timezone", "Mars/Olympus")])
def test_bad_policies_are_refused_with_the_field_named(field, value):
    kwargs = {"retention_days": 7, field: value}
    with pytest.raises(ValueError, match=field.split("_")[0] if field != "timezone" else "timezone"):
        RetentionPolicy(**kwargs).validate()


def test_copies_never_tagged_complete_still_keep_their_newest():
    copies = [img(f"m-copy-{age}", age, region="cn-shanghai", **{"ops:source-image": f"m-src-{age}"})
              for age in (20, 30, 40)]
    d = decided(copies, retention_days=7, max_delete_fraction=1.0)
    assert not d["m-copy-20"].delete and d["m-copy-20"].rule == rt.NEWEST
    assert d["m-copy-30"].delete and d["m-copy-40"].delete


# -- policy sets (issue 22 case 6) -----------------------------------------------------------------------------------
SET_NAMES = [*pol.PROJECT_POLICIES, "nightly"]
IMAGE_POLICIES = [*SET_NAMES, "monthly", None]          # None: a managed image with no ops:policy (an undo image)


@st.composite
def mixed_fleets(draw) -> list[ImageFacts]:
    """The generated fleets above, their managed images spread over the project's policies, two others and none."""
    images = draw(fleets())
    picks = draw(st.lists(st.sampled_from(IMAGE_POLICIES), min_size=len(images), max_size=len(images)))
    out = []
    chosen: dict[str, str | None] = {}
    for image, pick in zip(images, picks, strict=True):
        choice = chosen.setdefault(image.image_id, pick)        # an image listed twice is the same image
        tags = dict(image.tags)
        if pv.is_managed(tags):
            tags.pop(pv.POLICY, None)
            if choice:
                tags[pv.POLICY] = choice
        out.append(replace(image, tags=tags))
    return out


policy_sets = st.one_of(st.none(), st.just(pol.ANY), st.sampled_from(SET_NAMES),
                        st.lists(st.sampled_from([*SET_NAMES, pol.ANY]), min_size=1, max_size=3, unique=True),
                        st.just(list(pol.PROJECT_POLICIES)))


@settings(max_examples=max(FLEETS // 5, 100), deadline=None)
@given(mixed_fleets(), policies, policy_sets)
def test_a_plan_never_deletes_an_image_outside_the_policy_set(images, base, chosen):
    policy = replace(base, policy=rt.policy_set(chosen))
    covered = None if chosen is None or chosen == pol.ANY or pol.ANY in chosen else \
        ({chosen} if isinstance(chosen, str) else set(chosen))
    p = plan(images, policy, NOW)
    check_never_deletes_the_wrong_image(images, replace(policy, policy=None), p)
    check_fraction_guard(p, policy)
    by_id = {i.image_id: i for i in images}
    for d in p.decisions:
        image = by_id[d.image_id]
        inside = covered is None or image.tags.get(pv.POLICY, "") in covered
        if d.delete:
            assert inside, f"{d.image_id} of policy {image.tags.get(pv.POLICY)!r} deleted by the set {chosen!r}"
        if pv.is_managed(image.tags) and not inside:
            assert d.rule == rt.UNCOVERED and not d.delete and d.policy == image.tags.get(pv.POLICY, "")
    counted = sum(n for regions in p.uncovered().values() for n in regions.values())
    assert counted == sum(1 for d in p.decisions if d.rule == rt.UNCOVERED)
    assert all(rp.managed == sum(1 for d in p.decisions if d.region == region and d.group and d.rule != rt.UNCOVERED)
               for region, rp in p.regions.items())      # the fraction guard counts covered images only
    # groups are per policy: leaving a policy out changes no decision about the images still covered
    wide = {d.image_id: (d.delete, d.rule, d.reason) for d in plan(images, replace(policy, policy=None), NOW).decisions}
    for d in p.decisions:
        if d.rule != rt.UNCOVERED:
            assert (d.delete, d.rule, d.reason) == wide[d.image_id]


def test_the_project_policies_are_the_defaults_and_any_is_not_a_policy():
    assert pol.PROJECT_POLICIES == ("ecs-cross-region-backup", "ecs-spot-image-cycle", "ecs-restore-undo",
                                    "ecs-golden-image")
    assert pol.ANY not in pol.PROJECT_POLICIES


@pytest.mark.parametrize("value, expected", [
    (None, None), ("any", None), (["any"], None), (["nightly", "any"], None),
    ("nightly", ("nightly",)), (["b", "a", "b"], ("b", "a")), (("a",), ("a",)),
    (list(pol.PROJECT_POLICIES), pol.PROJECT_POLICIES),
])
def test_policy_set_forms(value, expected):
    assert rt.policy_set(value) == expected


@pytest.mark.parametrize("value, match", [
    ([], "at least one"), ([""], "not an ops:policy"), (["a", " "], "not an ops:policy"), ("x" * 129, "not an ops"),
    ([1], "not an ops:policy"), (5, "got int"), ({"a": 1}, "got dict"), ("['a', 'b']", "rendered to a string"),
])
def test_bad_policy_sets_are_refused_with_a_clear_error(value, match):
    with pytest.raises(ValueError, match=match):
        rt.policy_set(value)
    with pytest.raises(ValueError, match=match):
        RetentionPolicy(retention_days=7, policy=value).validate()


def test_the_spot_cycle_and_the_backup_never_compete_and_an_undo_image_is_reported():
    images = [img(f"m-spot-{age}", age, instance="i-1", policy=pol.SPOT_CYCLE_POLICY, **{"ops:retention-days": "3"})
              for age in (1, 2, 3, 9)]
    images += [img("m-bak-1", 0.5, instance="i-1", policy=pol.BACKUP_POLICY),
               img("m-bak-20", 20, instance="i-1", policy=pol.BACKUP_POLICY)]
    undo = ImageFacts("m-undo", "cn-hangzhou", NOW - 30 * DAY, "Available",
                      {pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE, "ops:undo-for": "i-1", pv.RETENTION_DAYS: "7"})
    p = plan([*images, undo], RetentionPolicy(retention_days=7, keep_last=3, policy=list(pol.PROJECT_POLICIES),
                                              max_delete_fraction=1.0), NOW)
    d = {x.image_id: x for x in p.decisions}
    assert d["m-spot-9"].delete and d["m-spot-1"].rule == rt.NEWEST     # a backup one day newer takes nothing
    assert d["m-bak-1"].rule == rt.NEWEST and d["m-bak-20"].rule == rt.LAST
    assert d["m-undo"].rule == rt.UNCOVERED and not d["m-undo"].delete
    assert p.uncovered() == {"": {"cn-hangzhou": 1}}
    assert p.regions["cn-hangzhou"].managed == 6
    assert rt.RetentionPlan.from_dict(p.to_dict()) == p


@settings(max_examples=300)
@given(days=st.one_of(st.integers(min_value=-5, max_value=100_000), st.sampled_from([0, 1, 3650, 3651, 36500, 65536])))
def test_every_retention_days_a_form_or_an_operator_accepts_is_one_the_planner_accepts(days):
    """One bound: a value the trigger forms' schema and the operators that write ``ops:retention-days`` (CreateImage,
    CopyImage, CreateSnapshot) accept is one the planner reads; a value the planner would refuse (and so keep the
    image forever) is refused before any image is tagged with it."""
    import jsonschema

    from aliyun_ops.logic.args import check_retention_days
    from aliyun_ops.operators.ecs import CopyImageOperator, CreateImageOperator, CreateSnapshotOperator
    from aliyun_ops.pipelines.backup_params import backup_params

    schema = backup_params()["retention_days"].schema
    form_ok = not list(jsonschema.Draft7Validator(schema).iter_errors(days))
    try:
        check_retention_days(days)
        operator_ok = True
    except ValueError:
        operator_ok = False
    for cls, extra in ((CreateImageOperator, {"instances": ["i-1"]}), (CopyImageOperator, {"images": ["m-1"],
                       "destination_regions": ["cn-shanghai"]}), (CreateSnapshotOperator, {"instances": ["i-1"]})):
        try:
            cls(task_id="t", retention_days=days, **extra)
            built = True
        except ValueError:
            built = False
        assert built == operator_ok, (cls.__name__, days)
    facts = img("m-x", 1, instance="i-1", **{pv.RETENTION_DAYS: str(days)})
    try:
        facts.own_days()
        planner_ok = True
    except ValueError:
        planner_ok = False
    assert form_ok == operator_ok == planner_ok, (days, form_ok, operator_ok, planner_ok)
