"""Spec "Distributed deployment": cluster mode is enabled in the config or with QDRANT__CLUSTER__ENABLED."""

from pathlib import Path

import pytest

from refimpl.config import load_settings


def test_cluster_mode_is_switched_on_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """QDRANT__CLUSTER__ENABLED=true turns cluster mode on; it is off by default."""
    monkeypatch.delenv("QDRANT__CLUSTER__ENABLED", raising=False)
    assert load_settings(None).cluster.enabled is False
    monkeypatch.setenv("QDRANT__CLUSTER__ENABLED", "true")
    assert load_settings(None).cluster.enabled is True


def test_cluster_mode_is_switched_on_from_the_config_file(tmp_path: Path) -> None:
    """``cluster: {enabled: true}`` in the YAML file turns cluster mode on."""
    path = tmp_path / "config.yaml"
    path.write_text("cluster:\n  enabled: true\n")
    assert load_settings(path).cluster.enabled is True
