"""Run reports: rows (one per backup (instance, destination) or per retention decision), a summary, text and
HTML tables."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields

from .outcome import FAILED, PENDING, SKIPPED, SUCCESS  # noqa: F401 (PENDING: re-exported for reports)

COLUMNS = ("instance_id", "instance_name", "source_region", "destination_region", "image_id", "copy_image_id",
           "size_gib", "image_seconds", "copy_seconds", "paused_seconds", "verified_rpo_hours", "status", "reason")


@dataclass
class ReportRow:
    """One (instance, destination region) line: ``ReportRow("i-1", destination_region="cn-shanghai")``."""

    instance_id: str
    instance_name: str = ""
    source_region: str = ""
    destination_region: str = ""
    image_id: str = ""
    copy_image_id: str = ""
    size_gib: int | None = None
    image_seconds: float | None = None
    copy_seconds: float | None = None
    paused_seconds: float | None = None     # downtime (stop) or freeze time (command) of the instance
    verified_rpo_hours: float | None = None  # age of the newest copy in that region proven to boot (achieved RPO)
    status: str = SUCCESS
    reason: str = ""

    def sort_key(self) -> tuple:
        return (self.source_region, self.instance_id, self.destination_region)


@dataclass
class RetentionRow:
    """One retention decision or swept snapshot: ``RetentionRow("cn-hangzhou", image_id="m-1", action="delete")``."""

    region: str
    group: str = ""
    image_id: str = ""
    name: str = ""
    created: str = ""
    action: str = "keep"            # keep | delete | held | sweep
    rule: str = ""
    status: str = SKIPPED
    reason: str = ""
    snapshots: str = ""

    def sort_key(self) -> tuple:
        return (self.region, self.action == "keep", self.group, self.image_id, self.snapshots)


@dataclass
class RestoreRow:
    """One restored instance: ``RestoreRow("i-1", image_id="m-1", status="success")``."""

    instance_id: str
    instance_name: str = ""
    region: str = ""
    was_status: str = ""
    image_id: str = ""
    undo_snapshot_id: str = ""
    fallback_image_id: str = ""
    health: str = ""
    status: str = FAILED
    reason: str = ""

    def sort_key(self) -> tuple:
        return (self.region, self.instance_id)


@dataclass
class VerifyRow:
    """One DR copy booted and checked: ``VerifyRow("cn-shanghai", instance_id="i-1", image_id="m-1")``."""

    region: str
    instance_id: str = ""
    image_id: str = ""
    image_name: str = ""
    verify_instance: str = ""
    boot_seconds: float | None = None
    status: str = FAILED
    reason: str = ""

    def sort_key(self) -> tuple:
        return (self.region, self.instance_id)


@dataclass
class ArchiveRow:
    """One RDS backup set and what the archive run did with it: ``ArchiveRow("rm-1", backup_id="3000000001")``.

    ``status``: success (archived now), skipped (already archived, or nothing to archive), pending (not finished
    by the window's end: a later run archives it), failed."""

    instance_id: str
    backup_id: str = ""
    key: str = ""
    size: int | None = None
    crc64: str = ""
    method: str = ""
    backup_start: str = ""
    backup_end: str = ""
    storage_class: str = ""
    status: str = FAILED
    reason: str = ""

    def sort_key(self) -> tuple:
        return (self.instance_id, self.backup_start, self.backup_id)


@dataclass
class CommandRow:
    """One instance a batch command ran on (or not): ``CommandRow("i-1", region="cn-hangzhou", exit_code=0)``.

    ``status``: success (exit 0), failed (non-zero exit, timeout, or the agent offline: ``agent`` says which),
    skipped (not Running, or never started once ``max_errors`` was passed)."""

    instance_id: str
    instance_name: str = ""
    region: str = ""
    invoke_id: str = ""
    invocation_status: str = ""
    exit_code: int | None = None
    agent: str = ""
    output: str = ""
    status: str = FAILED
    reason: str = ""

    def sort_key(self) -> tuple:
        return (self.region, self.instance_id)


@dataclass
class StepRow:
    """One step of a pipeline run on one thing (a golden image): ``StepRow("test", status="success", detail=...)``.
    ``status``: success, failed, or skipped (not reached, or not needed)."""

    step: str
    status: str = SKIPPED
    detail: str = ""
    order: int = 0

    def sort_key(self) -> tuple:
        return (self.order,)


@dataclass
class Report:
    """Example::

        report = Report.build(rows)
        report.outcome        # "success" | "partial" | "failure" | "empty"
        report.to_html()
    """

    rows: list
    title: str = "Cross-region backup"
    meta: dict = field(default_factory=dict)
    columns: tuple[str, ...] = COLUMNS

    @classmethod
    def build(cls, rows: Iterable, *, row_type: type = ReportRow, **kwargs) -> Report:
        """Rows (``row_type`` instances or mappings) sorted by the row type's ``sort_key``."""
        names = tuple(f.name for f in fields(row_type))
        built = [r if isinstance(r, row_type) else row_type(**{k: v for k, v in r.items() if k in names})
                 for r in rows]
        built.sort(key=lambda r: r.sort_key())
        return cls(built, columns=names, **kwargs)

    @property
    def counts(self) -> dict[str, int]:
        out = {SUCCESS: 0, FAILED: 0, SKIPPED: 0}
        for row in self.rows:
            out[row.status] = out.get(row.status, 0) + 1
        return out

    @property
    def outcome(self) -> str:
        c = self.counts
        if not self.rows:
            return "empty"
        if c[FAILED] == 0:
            return "success"
        return "failure" if c[SUCCESS] == 0 else "partial"

    def to_dict(self) -> dict:
        return {"title": self.title, "outcome": self.outcome, "counts": self.counts, "meta": self.meta,
                "columns": list(self.columns), "rows": [asdict(r) for r in self.rows]}

    @staticmethod
    def _cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.0f}"
        return " ".join(str(value).splitlines())

    def to_text(self) -> str:
        table = [list(self.columns)] + [[self._cell(getattr(r, c)) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(self.columns))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        c = self.counts
        lines.append(f"{self.outcome.upper()}: {c[SUCCESS]} succeeded, {c[FAILED]} failed, {c[SKIPPED]} skipped")
        return "\n".join(lines)

    def to_html(self) -> str:
        c = self.counts
        head = "".join(f"<th>{html.escape(col)}</th>" for col in self.columns)
        body = []
        for r in self.rows:
            colour = {"success": "#e6f4ea", "failed": "#fce8e6"}.get(r.status, "#fef7e0")
            cells = "".join(f"<td>{html.escape(self._cell(getattr(r, col)))}</td>" for col in self.columns)
            body.append(f'<tr style="background:{colour}">{cells}</tr>')
        meta = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in self.meta.items())
        return (f"<h2>{html.escape(self.title)}: {self.outcome}</h2>"
                f"<p>{c[SUCCESS]} succeeded, {c[FAILED]} failed, {c[SKIPPED]} skipped</p>"
                f"<ul>{meta}</ul>"
                f'<table border="1" cellpadding="4" cellspacing="0"><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>")


def backup_rows(selected: Iterable[Mapping], created: Iterable[Mapping] | None,
                copies: Iterable[Mapping] | None, destinations: Iterable[str],
                upstream_error: str = "", prepared: Iterable[Mapping] | None = None,
                resumed: Iterable[Mapping] | None = None) -> list[ReportRow]:
    """One row per (selected instance, destination region) from the tasks' per-item results.

    ``created`` items: ``{"instance_id", "image_id", "status", "reason", "size_gib", "seconds"}``;
    ``copies`` items: ``{"source_image_id", "image_id", "destination_region", "status", "reason", "seconds"}``.
    ``prepared`` items (pre-backup command or stop): a failed preparation explains a missing image.
    A missing result (task failed or never ran) becomes a failed row that says so: nothing is dropped.
    ``resumed`` items (the resume of what preparation paused): ``paused_seconds`` fills the column, and an
    instance that could not be resumed makes its rows failed, whatever happened to its images.
    """
    resumes = {r["instance_id"]: r for r in (resumed or []) if r.get("instance_id")}
    prep_failed = {p["instance_id"]: p.get("reason") or p.get("error") or "failed"
                   for p in (prepared or []) if p.get("status") == FAILED and p.get("instance_id")}
    by_instance = {c["instance_id"]: c for c in (created or []) if c.get("instance_id")}
    by_copy = {(c.get("source_image_id"), c.get("destination_region")): c for c in (copies or [])}
    rows = []
    for inst in selected:
        iid = inst["instance_id"]
        base = {"instance_id": iid, "instance_name": inst.get("instance_name", ""),
                "source_region": inst.get("region", "")}
        if inst.get("status") == "missing":
            for dest in destinations:
                rows.append(ReportRow(**base, destination_region=dest, status=FAILED,
                                      reason="instance not found"))
            continue
        made = by_instance.get(iid)
        for dest in destinations:
            row = ReportRow(**base, destination_region=dest)
            if made is None and iid in prep_failed:
                row.status, row.reason = FAILED, f"not imaged: preparation failed: {prep_failed[iid]}"
            elif made is None:
                row.status, row.reason = FAILED, upstream_error or "image was not created (task did not finish)"
            elif made.get("status") != SUCCESS:
                row.status = made.get("status") or FAILED
                row.image_id = made.get("image_id") or ""
                row.reason = f"image: {made.get('reason') or made.get('error') or 'failed'}"
            else:
                row.image_id, row.size_gib, row.image_seconds = made["image_id"], made.get("size_gib"), made.get("seconds")
                copy = by_copy.get((made["image_id"], dest))
                if copy is None:
                    row.status, row.reason = FAILED, upstream_error or "copy was not made (task did not finish)"
                else:
                    row.copy_image_id = copy.get("image_id") or ""
                    row.copy_seconds = copy.get("seconds")
                    row.status = copy.get("status") or FAILED
                    row.reason = copy.get("reason") or copy.get("error") or ""
            resume = resumes.get(iid)
            if resume is not None:
                row.paused_seconds = resume.get("paused_seconds")
                if resume.get("status") != SUCCESS:
                    row.status = FAILED
                    row.reason = "; ".join(filter(None, [row.reason, f"NOT RESUMED: {resume.get('reason')}"]))
            rows.append(row)
    return rows


def achieved_rpo(images: Iterable[Mapping], now: float) -> dict[tuple[str, str], float]:
    """``{(source instance, region): hours}``: the age at ``now`` of the newest copy tagged ``ops:verified-at``.

    ``images``: ``{"instance_id", "region", "created" (epoch s), "verified": bool}``.
    """
    newest: dict[tuple[str, str], float] = {}
    for img in images:
        if not img.get("verified") or img.get("created") is None or not img.get("instance_id"):
            continue
        key = (img["instance_id"], img["region"])
        newest[key] = max(newest.get(key, float("-inf")), float(img["created"]))
    return {key: round(max(now - created, 0.0) / 3600, 1) for key, created in newest.items()}
