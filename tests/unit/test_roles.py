"""What a connection's URL says about who it acts as."""

from __future__ import annotations

from swarmhub.roles import dedupe_key_for, tenant_for


def test_the_dedupe_key_comes_from_the_password_and_only_from_it() -> None:
    ann = dedupe_key_for("nats://client:s3cret@127.0.0.1:4222")
    assert ann is not None and len(ann) == 32
    assert dedupe_key_for("nats://client:s3cret@127.0.0.1:5222,nats://127.0.0.1:6222") == ann
    assert dedupe_key_for("nats://client:other@127.0.0.1:4222") not in (None, ann)
    assert b"s3cret" not in ann


def test_without_a_password_there_is_no_key_and_the_tenant_is_the_open_one() -> None:
    assert dedupe_key_for("nats://127.0.0.1:4222") is None
    assert tenant_for("nats://127.0.0.1:4222") == "_open"
