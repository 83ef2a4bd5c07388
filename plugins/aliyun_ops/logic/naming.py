"""Names and idempotency tokens for what we create.

ECS image names must be 2-128 characters, start with a letter (or a Chinese character) and not
start with ``http://`` or ``https://``; allowed characters are letters, digits, ``.``, ``_``,
``-`` and ``:``. ``ClientToken`` is at most 64 ASCII characters.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Mapping

IMAGE_NAME_MAX = 128
CLIENT_TOKEN_MAX = 64
DEFAULT_IMAGE_NAME_TEMPLATE = "backup-{instance_name}-{instance_id}-{date}"
NAME_FIELDS = frozenset({"instance_id", "instance_name", "region", "date", "datetime", "run_id", "dag_id",
                             "destination_region"})

_DISALLOWED = re.compile(r"[^0-9A-Za-z._:\-\u4e00-\u9fff]+")


def name_fields(template: str) -> set[str]:
    """The ``{field}`` names a template uses. Raises ``ValueError`` on malformed braces."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"image_name_template {template!r} is malformed: {exc}") from None


def validate_name_template(template: str) -> None:
    """Raise ``ValueError`` if the template uses unknown fields or is empty.

    >>> validate_name_template("backup-{instance_id}-{date}")
    """
    if not template or not template.strip():
        raise ValueError("image_name_template must not be empty")
    unknown = name_fields(template) - NAME_FIELDS
    if unknown:
        raise ValueError(f"image_name_template uses unknown fields {sorted(unknown)}; "
                         f"allowed: {sorted(NAME_FIELDS)}")


def validate_image_name_template(template: str) -> None:
    """:func:`validate_name_template`, and the template must contain ``{instance_id}``: names of the
    images of one run must differ per instance (ECS refuses a duplicate name in a region).
    ``validate_image_name_template("backup-{date}")`` raises ``ValueError``.
    """
    validate_name_template(template)
    if "instance_id" not in name_fields(template):
        raise ValueError(f"image_name_template {template!r} must contain {{instance_id}}: without it the images "
                         f"of one run get the same name")


def sanitize_image_name(raw: str) -> str:
    """Turn any string into a valid ECS image name (deterministically).

    >>> sanitize_image_name("my web/server 01")
    'my-web-server-01'
    """
    name = _DISALLOWED.sub("-", raw).strip("-")
    if name.lower().startswith(("http:", "https:")):
        name = "img-" + name
    if not name or not (name[0].isalpha()):
        name = "img-" + name
    if len(name) > IMAGE_NAME_MAX:
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        name = name[: IMAGE_NAME_MAX - 9].rstrip("-") + "-" + digest
    if len(name) < 2:
        name = (name + "-img")[:IMAGE_NAME_MAX]
    return name


def render_image_name(template: str, values: Mapping[str, str]) -> str:
    """Render ``template`` with ``values`` and make the result a valid image name."""
    validate_name_template(template)
    safe = {k: str(values.get(k, "")) for k in NAME_FIELDS}
    return sanitize_image_name(template.format(**safe))


def client_token(*parts: str) -> str:
    """A stable ``ClientToken`` for one logical create: same parts, same token.

    >>> client_token("dag", "run", "create_image", "i-1") == client_token("dag", "run", "create_image", "i-1")
    True
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return ("ops-" + digest)[:CLIENT_TOKEN_MAX]


def short_hash(text: str, n: int = 6) -> str:
    """A short, stable digest of ``text`` (to keep names unique when cut to length)."""
    return hashlib.sha1(text.encode()).hexdigest()[:n]
