"""Archive RDS backup sets to OSS every night (streamed in bounded memory, CRC-64 verified, nothing missed).

select RDS instances (ids or tags) -> every Success backup of the last ``lookback_days`` (7) that is not archived
yet -> stream each into OSS (``rds/{instance_id}/{date}/{backup_id}.tar``) with metadata and ``storage_class``,
size and CRC-64 checked -> ``manifests/<dag>/<run>.json`` in the bucket -> report (files, email). A backup still
running at the window's end is reported pending and archived by a later run, as is a night the scheduler missed.
The bucket's region is found by itself (GetBucketLocation).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, task

from aliyun_ops.hooks.oss import STORAGE_CLASSES
from aliyun_ops.logic import ids
from aliyun_ops.logic.budget import CONCURRENCY, COUNT_OR_PERCENT
from aliyun_ops.operators.rds import ArchiveRdsBackupsToOssOperator

with DAG(
    dag_id="rds_backup_archive",
    description="Copy RDS backup sets into an OSS bucket",
    schedule=CronTriggerTimetable("0 3 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["aliyun", "rds", "oss", "backup"],
    doc_md=__doc__,
    params={
        "instance_ids": Param([], type="array", items=ids.schema("rds_instance"),
                              title="RDS instance ids", description="Or leave empty and select by tags."),
        "tags": Param({"backup": "archive"}, type="object", additionalProperties={"type": "string"},
                      title="Selection tags", description="Used when no instance ids are given."),
        "bucket": Param("ops-archive", type="string", pattern=ids.pattern("oss_bucket"),
                        title="OSS bucket"),
        "oss_region": Param(None, type=["null", "string"], title="Bucket region",
                            description="Empty: found with GetBucketLocation."),
        "key_template": Param("rds/{instance_id}/{date}/{backup_id}.tar", type="string", title="Object key"),
        "lookback_days": Param(7, type="integer", minimum=1, maximum=366, title="Look back (days)",
                               description="Every backup started in these days before the run's data interval end "
                                           "and not archived yet is archived: a backup still running at one run, "
                                           "or a night the scheduler missed, is picked up by a later run."),
        "start": Param(None, type=["null", "string"], title="Window start (UTC, optional)",
                       description="Overrides the window, e.g. 2026-11-01T00:00Z."),
        "end": Param(None, type=["null", "string"], title="Window end (UTC, optional)"),
        "concurrency": Param(2, **CONCURRENCY, title="Concurrency",
                             description="Backups streamed at once: a number, or a percentage rounded up to at least 1."),
        "max_errors": Param(0, **COUNT_OR_PERCENT, title="Max errors",
                            description="Failures tolerated before the run fails: a number or a percentage."),
        "storage_class": Param("Standard", type="string", enum=list(STORAGE_CLASSES), title="Storage class",
                               description="Of the archived objects (Archive and colder must be restored to read)."),
        "transition_days": Param(None, type=["null", "integer"], minimum=1, maximum=36500,
                                 title="Move to cold storage after (days)",
                                 description="Empty: no lifecycle rule. Else a rule on the key prefix moves objects "
                                             "to the class below after that many days."),
        "transition_storage_class": Param("Archive", type="string", enum=list(STORAGE_CLASSES[1:]),
                                          title="Cold storage class"),
        "notify_emails": Param([], type="array", items={"type": "string", "format": "idn-email"},
                               title="Email the report to"),
    },
) as dag:

    @task(multiple_outputs=True)
    def plan(**context) -> dict:
        """Which instances and which time window (one DescribeDBInstances call when selecting by tags)."""
        from aliyun_ops.hooks.rds import RdsHook, rds_time

        params = context["params"]
        ids = list(params["instance_ids"])
        if not ids:
            if not params["tags"]:
                raise ValueError("give instance_ids or selection tags")
            ids = [i["DBInstanceId"] for i in RdsHook().describe_db_instances(tags=params["tags"])]
        end = params["end"] or rds_time(context.get("data_interval_end") or pendulum.now("UTC"))
        start = params["start"] or rds_time(pendulum.parse(end) - timedelta(days=params["lookback_days"]))
        return {"instance_ids": ids, "start": start, "end": end}

    window = plan()
    archive = ArchiveRdsBackupsToOssOperator(
        task_id="archive_backups",
        instance_ids=window["instance_ids"],
        bucket="{{ params.bucket }}",
        oss_region="{{ params.oss_region }}",
        key_template="{{ params.key_template }}",
        start=window["start"],
        end=window["end"],
        concurrency="{{ params.concurrency }}",
        max_errors="{{ params.max_errors }}",
        storage_class="{{ params.storage_class }}",
        transition_days="{{ params.transition_days }}",
        transition_storage_class="{{ params.transition_storage_class }}",
    )

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def report(**context) -> dict:
        """Report files and email; fails the run when the archive did not do what it promised."""
        from aliyun_ops.pipelines.archive_report import finish_archive

        return finish_archive(context)

    archive >> report()
