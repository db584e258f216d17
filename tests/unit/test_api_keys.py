"""API keys: generation, entries of hash and scopes, constant-time lookup, and the bind guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobbroker import keys
from jobbroker.keys import KeyRing, Scope
from jobbroker.settings import Settings


def test_a_key_is_random_and_its_entry_holds_only_its_hash_and_scopes() -> None:
    key = keys.generate()
    assert key.startswith("jbk_") and len(key) > 40 and key != keys.generate()
    entry = keys.entry(key, [Scope.CONSUME, Scope.PRODUCE])
    assert entry == f"sha256:{keys.digest(key).hex()}:produce+consume"
    assert key[4:] not in entry


def test_the_ring_finds_a_key_by_its_hash_and_knows_its_scopes() -> None:
    worker, admin = keys.generate(), keys.generate()
    ring = KeyRing.parse(f"{keys.entry(worker, [Scope.CONSUME])}, {keys.entry(admin, [Scope.ADMIN])}")
    assert ring.enabled
    found = ring.find(worker)
    assert found is not None and found.scopes == {Scope.CONSUME}
    assert found.allows(Scope.CONSUME) and not found.allows(Scope.PRODUCE) and not found.allows(Scope.ADMIN)
    assert ring.find(admin).allows(Scope.PRODUCE)  # type: ignore[union-attr]
    assert ring.find(keys.generate()) is None
    assert ring.find("") is None
    assert found.id == keys.digest(worker).hex()[:12]


def test_no_entries_means_authentication_is_off() -> None:
    assert not KeyRing.parse(None).enabled
    assert not KeyRing.parse(" , ").enabled


def test_entries_come_from_a_file_too_with_comments(tmp_path: Path) -> None:
    a, b = keys.generate(), keys.generate()
    file = tmp_path / "keys"
    file.write_text(f"# the workers\n{keys.entry(a, [Scope.CONSUME])}\n\n{keys.entry(b, [Scope.ADMIN])}  # ops\n")
    ring = KeyRing.parse(None, file)
    assert ring.find(a) is not None and ring.find(b) is not None


@pytest.mark.parametrize(
    "entry",
    [
        "jbk_rawkeyinsteadofahash",
        "sha256:abc:admin",
        f"sha256:{'0' * 64}:",
        f"sha256:{'0' * 64}:root",
        f"sha256:{'0' * 64}:admin+root",
        f"md5:{'0' * 64}:admin",
        f"sha256:{'A' * 64}:admin",
    ],
)
def test_malformed_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        KeyRing.parse(entry)


def test_an_entry_needs_a_scope() -> None:
    with pytest.raises(ValueError):
        keys.entry(keys.generate(), [])


@pytest.mark.parametrize(
    ("host", "configured", "insecure", "refused"),
    [
        ("127.0.0.1", False, False, False),
        ("localhost", False, False, False),
        ("::1", False, False, False),
        ("0.0.0.0", False, False, True),
        ("10.1.2.3", False, False, True),
        ("::", False, False, True),
        ("broker.internal", False, False, True),
        ("0.0.0.0", True, False, False),
        ("0.0.0.0", False, True, False),
    ],
)
def test_serving_beyond_loopback_needs_keys_or_insecure(
    host: str, configured: bool, insecure: bool, refused: bool
) -> None:
    ring = KeyRing.parse(keys.entry(keys.generate(), [Scope.ADMIN]) if configured else None)
    assert (keys.exposure_refusal(ring, host, insecure) is not None) == refused


def test_the_setting_hides_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = keys.entry(keys.generate(), [Scope.ADMIN])
    monkeypatch.setenv("JOBBROKER_API_KEYS", entry)
    settings = Settings()
    assert settings.api_keys is not None and settings.api_keys.get_secret_value() == entry
    assert entry not in repr(settings)
