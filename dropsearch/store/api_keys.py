"""API keys: random bearer keys of which only the sha256 is stored.

A key is ``"ds_"`` + 43 URL-safe characters (256 random bits), so a fast unsalted hash is enough: the key cannot
be guessed or brute-forced from its hash. The plain key is returned once, at creation. :func:`authenticate` finds
candidates by the (non-secret) 8-character display prefix and compares hashes with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dropsearch.store.models import KEY_PREFIX_LENGTH, MAX_NAME_LENGTH, ApiKeyModel, utcnow
from dropsearch.store.records import ApiKeyRecord
from dropsearch.store.searches import check_owner

__all__ = [
    "KEY_PREFIX",
    "MIN_PROVIDED_KEY_LENGTH",
    "adopt_api_key",
    "authenticate",
    "create_api_key",
    "hash_key",
    "list_api_keys",
    "revoke_api_key",
]

KEY_PREFIX = "ds_"
MIN_PROVIDED_KEY_LENGTH = 32  # a key chosen outside (an operator's secret) must be at least this long
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # what an HTTP bearer credential may hold (RFC 6750 b64token)


def hash_key(plain_key: str) -> str:
    """The stored form of a key: its sha256 hex digest."""
    return hashlib.sha256(plain_key.encode("utf-8")).hexdigest()


def create_api_key(*, session: Session, owner: str, name: str, is_admin: bool = False) -> tuple[str, ApiKeyRecord]:
    """Create a key for ``owner``.

    Args:
        session: the caller's session.
        owner: who the key acts for; searches created with it belong to this owner.
        name: a label (e.g. "laptop"), at most 200 characters.
        is_admin: whether the key may manage other keys. Default: ``False``

    Returns:
        ``(plain_key, record)``. The plain key is not stored anywhere: show it to the user once.
    """
    check_owner(owner)
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name must be a string of at most {MAX_NAME_LENGTH} characters, got {name!r}")
    plain_key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKeyModel(
        owner=owner,
        name=name,
        key_hash=hash_key(plain_key),
        prefix=plain_key[:KEY_PREFIX_LENGTH],
        is_admin=bool(is_admin),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return plain_key, ApiKeyRecord.from_model(row)


def adopt_api_key(
    *, session: Session, plain_key: str, owner: str, name: str, is_admin: bool = False
) -> tuple[ApiKeyRecord, list[int]]:
    """Make ``plain_key``, a key chosen outside (an operator's secret), the one active key of ``owner`` and ``name``.

    The key is stored hashed like every key. Idempotent: when an active key of ``owner`` and ``name`` already has
    this hash, it is returned and nothing changes (a restart with the same secret adds no row). Otherwise the other
    active keys of ``owner`` and ``name`` (the previous secret) are revoked and the new key is stored. Safe when two
    processes adopt the same key at once.

    Args:
        session: the caller's session.
        plain_key: the key: at least 32 characters that may appear in a bearer header (letters, digits, ``-._~+/``,
            trailing ``=``).
        owner: who the key acts for.
        name: the label that identifies the keys this call manages (e.g. ``"admin_key_file"``).
        is_admin: whether the key may manage other keys. Default: ``False``

    Returns:
        ``(record, revoked_ids)``: the active key, and the ids of the keys revoked now.

    Raises:
        ValueError: the key is too short or has other characters, or its hash belongs to another key or to a
            revoked key (a revoked secret is never brought back).
    """
    check_owner(owner)
    if not isinstance(plain_key, str) or len(plain_key) < MIN_PROVIDED_KEY_LENGTH or len(plain_key) > 1024:
        raise ValueError(f"the key must have {MIN_PROVIDED_KEY_LENGTH} to 1024 characters")
    if not _TOKEN68.fullmatch(plain_key):
        raise ValueError("the key may hold only letters, digits, '-', '.', '_', '~', '+', '/' and trailing '='")
    digest = hash_key(plain_key)

    def same() -> ApiKeyModel | None:
        return session.scalars(
            select(ApiKeyModel).where(ApiKeyModel.key_hash == digest).execution_options(populate_existing=True)
        ).one_or_none()

    row = same()
    if row is None:
        try:
            with session.begin_nested():
                row = ApiKeyModel(
                    owner=owner,
                    name=name,
                    key_hash=digest,
                    prefix=plain_key[:KEY_PREFIX_LENGTH],
                    is_admin=bool(is_admin),
                    created_at=utcnow(),
                )
                session.add(row)
        except IntegrityError:  # another process stored the same key between the look-up and the insert
            row = same()
            if row is None:
                raise
    if row.revoked_at is not None:
        raise ValueError(f"the key was revoked (key id {row.id}); provide a new one")
    if (row.owner, row.name, bool(row.is_admin)) != (owner, name, bool(is_admin)):
        raise ValueError(f"the key is already stored as another key (key id {row.id}); provide a new one")
    previous = session.scalars(
        select(ApiKeyModel.id).where(
            ApiKeyModel.owner == owner,
            ApiKeyModel.name == name,
            ApiKeyModel.revoked_at.is_(None),
            ApiKeyModel.id != row.id,
        )
    ).all()
    revoked = [key_id for key_id in previous if revoke_api_key(session=session, key_id=key_id)]
    return ApiKeyRecord.from_model(row), revoked


def authenticate(*, session: Session, plain_key: str) -> ApiKeyRecord | None:
    """The active (not revoked) key matching ``plain_key``, or ``None``.

    Every candidate sharing the key's display prefix is compared in constant time, without an early exit.
    """
    if not isinstance(plain_key, str) or not plain_key:
        return None
    wanted = hash_key(plain_key)
    candidates = session.scalars(
        select(ApiKeyModel).where(ApiKeyModel.prefix == plain_key[:KEY_PREFIX_LENGTH], ApiKeyModel.revoked_at.is_(None))
    ).all()
    match = None
    for row in candidates:
        if hmac.compare_digest(row.key_hash.encode("ascii"), wanted.encode("ascii")):
            match = row
    return None if match is None else ApiKeyRecord.from_model(match)


def list_api_keys(*, session: Session, owner: str | None = None, include_revoked: bool = False) -> list[ApiKeyRecord]:
    """Keys by creation, of one owner (or all owners for ``None``), active ones only unless ``include_revoked``."""
    stmt = select(ApiKeyModel).order_by(ApiKeyModel.id)
    if owner is not None:
        stmt = stmt.where(ApiKeyModel.owner == owner)
    if not include_revoked:
        stmt = stmt.where(ApiKeyModel.revoked_at.is_(None))
    return [ApiKeyRecord.from_model(row) for row in session.scalars(stmt.execution_options(populate_existing=True))]


def revoke_api_key(*, session: Session, key_id: int, owner: str | None = None) -> bool:
    """Revoke a key (it stops authenticating at once); with ``owner``, only that owner's key.

    Returns:
        Whether an active key was revoked.
    """
    stmt = update(ApiKeyModel).where(ApiKeyModel.id == key_id, ApiKeyModel.revoked_at.is_(None))
    if owner is not None:
        stmt = stmt.where(ApiKeyModel.owner == owner)
    result = session.execute(stmt.values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    return result.rowcount == 1
