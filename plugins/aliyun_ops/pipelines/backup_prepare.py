"""Which selected instances a backup run still has to pause and image.

A re-run of the same night (a cleared run, a retry from the top) must not stop or freeze again an instance
whose image this run key already made: that image is found by its provenance tags and reused by
``CreateImageOperator``, so pausing the instance again would be downtime for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aliyun_ops.logic import statuses as st

from ..hooks.ecs import EcsHook
from ..logic import provenance as pv
from ..runtime import run_key

FAILED_IMAGE_STATUSES = tuple(sorted(st.IMAGE_FAILED))


def already_imaged(hook: EcsHook, selected: Sequence[Mapping[str, Any]], *, run: str, dag_id: str) -> set[str]:
    """Ids of ``selected`` instances with an image of this run key that has not failed (one DescribeImages by
    provenance tags per region)."""
    tags = {pv.RUN_KEY: run[:128], pv.DAG_ID: dag_id[:128], pv.MANAGED_BY_KEY: pv.MANAGED_BY_VALUE}
    wanted = {i["instance_id"] for i in selected}
    done: set[str] = set()
    for region in sorted({i["region"] for i in selected}):
        for image in hook.describe_images(region, tags=tags):
            source = pv.tags_from_api(image.get("Tags")).get(pv.SOURCE_INSTANCE)
            if source in wanted and image.get("Status") not in FAILED_IMAGE_STATUSES:
                done.add(source)
    return done


def still_to_image(selected: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> list[dict]:
    """``selected`` without the instances this run already imaged (see :func:`already_imaged`)."""
    if not selected:
        return []
    done = already_imaged(EcsHook(), selected, run=run_key(context), dag_id=context["ti"].dag_id)
    return [dict(i) for i in selected if i["instance_id"] not in done]
