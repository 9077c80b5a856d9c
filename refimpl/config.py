"""Peer configuration: a YAML file with Qdrant's key names, overridden by ``QDRANT__…`` variables.

Rules:

* Key names and defaults follow Qdrant's ``config/config.yaml`` for the keys we implement:
  ``service.host`` (``0.0.0.0``), ``service.http_port`` (6333), ``cluster.enabled`` (false),
  ``cluster.p2p.port`` (6335), ``cluster.consensus.tick_period_ms`` (100),
  ``storage.storage_path`` (``./storage``), ``log_level`` (``INFO``).
* Secrets — ``service.api_key``, ``service.read_only_api_key`` and ``cluster.p2p.secret`` —
  are :class:`pydantic.SecretStr`, so printing or logging the settings shows ``**********``;
  an empty string counts as unset (as in Qdrant). See :mod:`refimpl.api.auth` and
  :mod:`refimpl.peer.handshake` for how they are used.
* Sources, later wins: built-in defaults, the ``--config-path`` YAML file, then environment
  variables ``QDRANT__SECTION__KEY`` with ``__`` for each level of nesting, e.g.
  ``QDRANT__CLUSTER__ENABLED=true`` or ``QDRANT__CLUSTER__P2P__PORT=7335``.
* Unknown keys are ignored (so a real Qdrant config file loads), but a known key with a bad
  value stops the peer at start with :class:`ConfigError`, whose message names the key
  (``cluster.p2p.port: Input should be less than or equal to 65535``).

Theory of operation: pydantic-settings builds :class:`Settings` from a chain of sources; we put
the YAML file below the environment so that, as in Qdrant, the environment wins.
"""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["ConfigError", "Settings", "load_settings", "p2p_secret"]

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the offending key."""


class _Section(BaseModel):
    # Unknown keys from a real Qdrant config (grpc_port, jwt_rbac, ...) are accepted and ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ServiceConfig(_Section):
    """``service``: where the REST API listens, and the keys it asks for."""

    host: str = "0.0.0.0"
    http_port: int = Field(default=6333, ge=0, le=65535)
    api_key: SecretStr | None = None
    """Read-write key: every REST call but the health checks must present it (when set)."""
    read_only_api_key: SecretStr | None = None
    """Key that may only read (GET and the searching POSTs)."""
    enforce_internal_auth: bool = False
    """Qdrant's switch for checking ``api_key`` on the p2p port: here it makes ``api_key`` the
    p2p secret when ``cluster.p2p.secret`` is not set."""


class P2pConfig(_Section):
    """``cluster.p2p``: the port other peers use to reach this one (Raft and joins)."""

    port: int = Field(default=6335, ge=0, le=65535)
    secret: SecretStr | None = None
    """Shared secret every peer of the cluster must prove it knows (refimpl's own key)."""


class ConsensusConfig(_Section):
    """``cluster.consensus``: the Raft clock."""

    # Lower than 5 ms makes the trio loop spin; higher than 10 s makes elections take minutes.
    tick_period_ms: int = Field(default=100, ge=5, le=10_000)
    bootstrap_timeout_sec: float = Field(default=15.0, gt=0)
    compact_wal_entries: int = Field(default=128, ge=0)


class ClusterConfig(_Section):
    """``cluster``: distributed mode on or off, and its ports and clock."""

    enabled: bool = False
    peer_id: int | None = Field(default=None, ge=1, lt=2**53)
    p2p: P2pConfig = P2pConfig()
    consensus: ConsensusConfig = ConsensusConfig()


class StorageConfig(_Section):
    """``storage``: where this peer keeps its Raft log and identity."""

    storage_path: Path = Path("./storage")


class Settings(BaseSettings):
    """The whole configuration of one peer."""

    model_config = SettingsConfigDict(
        env_prefix="QDRANT__",
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    service: ServiceConfig = ServiceConfig()
    cluster: ClusterConfig = ClusterConfig()
    storage: StorageConfig = StorageConfig()
    log_level: LogLevel = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the YAML file's content; the environment must override it.
        return (env_settings, init_settings)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        # A mistyped secret must not end up in the error message (which is logged).
        shown = "(hidden)" if _is_secret(key) else repr(item.get("input"))
        lines.append(f"{key}: {item['msg']} (got {shown})")
    return "invalid configuration: " + "; ".join(lines)


def _is_secret(key: str) -> bool:
    return key.endswith(("api_key", "secret"))


def p2p_secret(settings: Settings) -> bytes | None:
    """The secret peers prove on the p2p port, or None (port open, as in Qdrant).

    ``cluster.p2p.secret`` if set; otherwise ``service.api_key`` when
    ``service.enforce_internal_auth`` is true; empty strings count as unset.
    """
    chosen = settings.cluster.p2p.secret
    if not _value(chosen) and settings.service.enforce_internal_auth:
        chosen = settings.service.api_key
    value = _value(chosen)
    return value.encode() if value else None


def _value(secret: SecretStr | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


def load_settings(config_path: Path | None = None) -> Settings:
    """Load the settings from ``config_path`` (optional) and the ``QDRANT__`` environment.

    Raises :class:`ConfigError` naming the bad key when a value does not validate.
    """
    data = _read_yaml(config_path) if config_path is not None else {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
