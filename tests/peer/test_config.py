"""Configuration: Qdrant's key names from YAML, QDRANT__ env overrides, errors naming the key."""

from pathlib import Path

import pytest

from refimpl.config import ConfigError, load_settings


def test_defaults_are_qdrants() -> None:
    """Spec "Distributed deployment": p2p port 6335, tick_period_ms 100; REST on 6333."""
    s = load_settings(None)
    assert (s.service.http_port, s.cluster.p2p.port, s.cluster.consensus.tick_period_ms) == (
        6333,
        6335,
        100,
    )
    assert s.cluster.enabled is False and s.service.host == "0.0.0.0"


def test_yaml_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment (QDRANT__SECTION__KEY, nested with __) wins over the file."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "cluster:\n  enabled: true\n  p2p: {port: 7000}\n  consensus: {tick_period_ms: 50}\n"
        "service: {http_port: 7001, api_key: ignored}\nstorage: {storage_path: /data}\n"
    )
    monkeypatch.setenv("QDRANT__CLUSTER__P2P__PORT", "7777")
    s = load_settings(path)
    assert s.cluster.enabled is True
    assert s.cluster.p2p.port == 7777
    assert s.cluster.consensus.tick_period_ms == 50
    assert s.service.http_port == 7001
    assert s.storage.storage_path == Path("/data")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"QDRANT__CLUSTER__P2P__PORT": "99999"}, "cluster.p2p.port"),
        ({"QDRANT__CLUSTER__ENABLED": "maybe"}, "cluster.enabled"),
        ({"QDRANT__CLUSTER__CONSENSUS__TICK_PERIOD_MS": "0"}, "cluster.consensus.tick_period_ms"),
        ({"QDRANT__SERVICE__HTTP_PORT": "http"}, "service.http_port"),
    ],
)
def test_bad_values_name_their_key(
    env: dict[str, str], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid value stops the start with a message naming the key."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"^invalid configuration: {key}: "):
        load_settings(None)


def test_unreadable_or_non_mapping_files_are_refused(tmp_path: Path) -> None:
    """A missing file, bad YAML or a YAML list are errors that name the file."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad)
