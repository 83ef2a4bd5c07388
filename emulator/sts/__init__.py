"""STS API (2015-04-01): AssumeRole, GetCallerIdentity, and the temporary keys they deal in.

Temporary keys live by the **real wall clock**, not the simulated one (the SDKs decide when to refresh by their
own clock). Modules, one concern each:

* :mod:`~emulator.sts.assume_role`: AssumeRole (role ARN, session name, duration, session policy);
* :mod:`~emulator.sts.identity`: GetCallerIdentity;
* :mod:`~emulator.sts.credentials`: minting, storing (``sts.keys``), answering and forgetting temporary keys
  (:func:`mint_key` is shared with the ECS metadata service, :mod:`emulator.metadata`);
* :mod:`~emulator.sts.clock`: :func:`credential_now`, the clock keys expire by, and the admin route
  ``/_emulator/sts/clock`` that moves it.
"""

from . import assume_role, clock, credentials, identity  # noqa: F401  (actions, events, routes register on import)
from .clock import credential_now
from .credentials import (
    DEFAULT_DURATION,
    MAX_DURATION,
    MIN_DURATION,
    TABLE,
    credentials_of,
    forget_expired,
    mint_key,
)

__all__ = ["DEFAULT_DURATION", "MAX_DURATION", "MIN_DURATION", "TABLE", "credential_now", "credentials_of",
           "forget_expired", "mint_key"]
