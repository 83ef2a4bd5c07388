"""Cloud Assistant facts and its output, pure: command types and limits, decoding what a command printed."""

from __future__ import annotations

import base64
import binascii

COMMAND_TYPES = {"RunShellScript": "linux", "RunPythonScript": "linux", "RunPerlScript": "linux",
                 "RunBatScript": "windows", "RunPowerShellScript": "windows"}
MAX_CONTENT_B64 = 16 * 1024
"""CommandContent may be at most 16 KB once Base64-encoded (CreateCommand/RunCommand docs; the emulator
counts the Base64 of Parameters too, so we check content + parameters against it)."""
MAX_PARAMETERS = 20
MAX_PARAMETER_NAME = 64
MAX_INSTANCES_PER_CALL = 100
MAX_TIMEOUT = 86400
AGENT_OFFLINE_CODES = frozenset({"ClientNotRunning", "ClientNotOnline", "ClientNotResponse", "ClientNetworkBlocked",
                                 "ClientIsUpgrading", "ClientNeedUpgrade", "InstanceNotRunning", "DeliveryTimeout"})
"""DescribeInvocationResults ``ErrorCode`` values saying the command never reached a working Cloud Assistant agent
(offline, unreachable, upgrading, or the instance not running): the command did not run, nothing on the machine
failed."""


def decode_output(raw: str | None) -> str:
    """Cloud Assistant returns output Base64-encoded; decode it (lenient: plain text passes through).

    >>> decode_output("aGVsbG8="), decode_output("plain text"), decode_output(None)
    ('hello', 'plain text', '')
    """
    if not raw:
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return raw
