"""The pure parts of the image repair: what the report says of each repair item, and the checks of an image made
before anything is created (property-based where the input is free text)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aliyun_ops.pipelines.image_repair import DEFAULT_REPAIR_ITEMS, REPAIR_ITEMS, check_image, item_lines, needs_repair

ITEMS = st.lists(st.sampled_from([i for i in REPAIR_ITEMS if i != "all"]), min_size=1, unique=True)


@given(ITEMS, st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60), max_size=20))
def test_every_item_gets_exactly_one_line(items, noise):
    said = item_lines("\n".join(noise), items)
    assert list(said) == items and all(isinstance(line, str) and len(line) <= 300 for line in said.values())


@given(ITEMS, st.data())
def test_the_last_line_naming_an_item_is_what_the_report_says(items, data):
    item = data.draw(st.sampled_from(items))
    output = f"[{item}]    OK     first\nunrelated\n[{item}]    FIXED  second\n"
    assert item_lines(output, items)[item] == f"[{item}]    FIXED  second"


def test_an_item_the_output_never_mentions_says_so():
    assert item_lines("[ImageRepair] done", ["grub"]) == {"grub": "(not mentioned in the output)"}


class Images:
    """A hook answering DescribeImages with one record (only what check_image reads)."""

    def __init__(self, image: dict | None):
        self.image = image

    def describe_images(self, region, image_ids=None, owner="self", **_):
        return [self.image] if self.image else []


IMAGE = {"ImageId": "m-1", "ImageName": "web", "Architecture": "x86_64", "OSType": "linux", "Platform": "CentOS",
         "BootMode": "BIOS", "ImageOwnerAlias": "self",
         "DiskDeviceMappings": {"DiskDeviceMapping": [{"SnapshotId": "s-1", "Type": "system"}]}}


def reason(image: dict | None, items=DEFAULT_REPAIR_ITEMS) -> str:
    try:
        check_image(Images(image), "cn-hangzhou", "m-1", items)
    except ValueError as err:
        return str(err)
    return ""


def test_a_repairable_image_gives_the_plan():
    plan = check_image(Images(IMAGE), "cn-hangzhou", "m-1", ["fstab", "grub"])
    assert (plan["snapshot_id"], plan["architecture"], plan["items"]) == ("s-1", "x86_64", ["fstab", "grub"])


def test_what_cannot_be_repaired_is_refused_with_the_reason():
    invalid = {"Items": {"Item": [{"Name": "SystemImage", "Value": "Invalid"}]}, "Status": "Finished"}
    assert "Invalid" in reason({**IMAGE, "DetectionOptions": invalid})
    assert "only x86_64 and arm64" in reason({**IMAGE, "Architecture": "i386"})
    assert "only Linux" in reason({**IMAGE, "OSType": "windows"})
    assert "no system snapshot" in reason({**IMAGE, "DiskDeviceMappings": {}})
    assert "your own" in reason({**IMAGE, "ImageOwnerAlias": "system"})
    assert "not found" in reason(None)
    assert "repair_items" in reason(IMAGE, ["grub", "kernel"]) and "repair_items" in reason(IMAGE, [])


def test_an_image_needs_repair_only_when_its_finished_check_found_a_boot_problem():
    def checked(status="Finished", **items):
        return {"DetectionOptions": {"Status": status, "Items": {"Item": [
            {"Name": name, **({"Value": value} if value in ("Invalid", "Supported") else {"RiskLevel": value})}
            for name, value in items.items()]}}}

    assert needs_repair(checked(Fstab="High", SystemImage="Supported"))
    assert not needs_repair(checked(CloudInit="Medium"))
    assert not needs_repair(checked("Processing", Fstab="High"))
    assert not needs_repair(checked(Fstab="High", SystemImage="Invalid"))
    assert not needs_repair({})
