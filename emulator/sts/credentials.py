"""STS temporary keys: minted (``STS.`` id, secret, ``CAIS`` security token), kept in the state table ``sts.keys``
where the server's :class:`~emulator.keys.KeyStore` finds them, answered as a ``Credentials`` block, forgotten a day
(credential clock) after they expire; until then they are answered ``InvalidSecurityToken.Expired``.

:func:`mint_key` serves AssumeRole (:mod:`emulator.sts.assume_role`) and the ECS metadata service
(:mod:`emulator.metadata`).
"""

from __future__ import annotations

import base64

from ..clock import iso
from ..keys import AccessKey
from ..state import State, on_event
from .clock import credential_now

MIN_DURATION, MAX_DURATION, DEFAULT_DURATION = 900, 43200, 3600
KEEP_EXPIRED = 86400  # expired keys are forgotten a day (credential clock) later; until then: "Expired"
TABLE = "sts.keys"
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


def mint_key(state: State, role_arn: str, session: str, duration: int, allow: list[str] | None = None) -> AccessKey:
    """A new temporary key (``STS.`` id, secret, ``CAIS`` security token) for ``role_arn``/``session``, valid
    ``duration`` seconds of :func:`credential_now`; stored in ``sts.keys`` where the key store finds it."""
    forget_expired(state)
    rng = state.rng("sts")
    key_id = "STS.NT" + "".join(rng.choice(_ALPHABET) for _ in range(24))
    secret = "".join(rng.choice(_ALPHABET) for _ in range(44))
    token = "CAIS" + base64.b64encode(rng.randbytes(180)).decode().rstrip("=")
    role_name = role_arn.rsplit("/", 1)[-1]
    key = AccessKey(key_id, secret, allow=allow, security_token=token, expires_at=credential_now(state) + duration,
                    principal=f"{role_name}:{session}", role_arn=role_arn)
    state.table(TABLE)[key_id] = key
    state.dirty = True
    return key


def forget_expired(state: State) -> int:
    """Drop the temporary keys that expired more than :data:`KEEP_EXPIRED` seconds ago; how many."""
    table = state.table(TABLE)
    horizon = credential_now(state) - KEEP_EXPIRED
    old = [k for k, key in table.items() if key.expires_at is not None and key.expires_at <= horizon]
    for key_id in old:
        del table[key_id]
    if old:
        state.dirty = True
    return len(old)


def credentials_of(key: AccessKey) -> dict:
    """The ``Credentials`` block of an AssumeRole answer (and the body of the metadata service's)."""
    return {"AccessKeyId": key.access_key_id, "AccessKeySecret": key.secret, "SecurityToken": key.security_token,
            "Expiration": iso(key.expires_at or 0)}


@on_event("sts.key.forget")
def _forget_key(state: State, event) -> None:
    """Events of states saved before keys lived by the credential clock: forget only what is long expired."""
    forget_expired(state)
