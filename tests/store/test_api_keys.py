from __future__ import annotations

import hashlib

from sqlalchemy import Engine, select

from dropsearch.store.api_keys import authenticate, create_api_key, list_api_keys, revoke_api_key
from dropsearch.store.db import session_scope
from dropsearch.store.models import ApiKeyModel


def _create(engine: Engine, owner: str = "alice", name: str = "laptop", is_admin: bool = False):
    with session_scope(engine) as session:
        return create_api_key(session=session, owner=owner, name=name, is_admin=is_admin)


def _auth(engine: Engine, plain_key: str):
    with session_scope(engine, read_only=True) as session:
        return authenticate(session=session, plain_key=plain_key)


def test_only_the_hash_is_stored(engine: Engine, db_url: str) -> None:
    plain, record = _create(engine)
    assert plain.startswith("ds_") and len(plain) == 46 and record.prefix == plain[:8]
    with session_scope(engine) as session:
        row = session.scalar(select(ApiKeyModel))
        stored = [str(getattr(row, column.key)) for column in ApiKeyModel.__table__.columns]
    assert row.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert not any(plain in value or plain[8:] in value for value in stored)
    if db_url.startswith("sqlite"):
        engine.dispose()  # checkpoint the WAL into the file
        assert plain[8:].encode() not in open(db_url.removeprefix("sqlite:///"), "rb").read()


def test_authenticate_accepts_the_key_and_refuses_others(engine: Engine) -> None:
    plain, record = _create(engine, is_admin=True)
    other_plain, other = _create(engine, owner="bob")
    assert _auth(engine, plain) == record and record.is_admin
    assert _auth(engine, other_plain) == other and other.owner == "bob"
    wrong_last_char = plain[:-1] + ("A" if plain[-1] != "A" else "B")
    for wrong in (wrong_last_char, plain[:8], plain + "x", "", "ds_", other_plain[:8] + plain[8:]):
        assert _auth(engine, wrong) is None


def test_revoked_keys_stop_working(engine: Engine) -> None:
    plain, record = _create(engine)
    _, kept = _create(engine, name="ci")
    with session_scope(engine) as session:
        assert not revoke_api_key(session=session, key_id=record.id, owner="bob")  # not bob's key
        assert revoke_api_key(session=session, key_id=record.id, owner="alice")
        assert not revoke_api_key(session=session, key_id=record.id)  # already revoked
    assert _auth(engine, plain) is None
    with session_scope(engine) as session:
        assert list_api_keys(session=session, owner="alice") == [kept]
        listed = list_api_keys(session=session, include_revoked=True)
    assert [key.id for key in listed] == [record.id, kept.id]
    assert listed[0].revoked_at is not None
