"""Configuration loading shared by every process: a TOML file, then environment variables.

Each process builds exactly one settings object at its entry point with `load_settings`; a bad
value stops startup with a `ConfigError` naming the offending key.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_CONFIG_FILE: ContextVar[Path | None] = ContextVar("coldchain_config_file", default=None)


class ConfigError(ValueError):
    """Configuration is invalid; `key` names the offending setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"invalid setting {key!r}: {message}")
        self.key = key
        self.message = message


class FileSettings(BaseSettings):
    """Base for settings read from (highest first) arguments, environment, a TOML file."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then environment, then the TOML file given to `load_settings`."""
        path = _CONFIG_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


S = TypeVar("S", bound=FileSettings)


def load_settings(cls: type[S], *, config_file: Path | None = None, **overrides: Any) -> S:
    """Build and validate settings; raise ConfigError naming the first bad key."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError("config", f"file {config_file} does not exist")
    token = _CONFIG_FILE.set(config_file)
    try:
        return cls(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(key, first["msg"]) from exc
    except ValueError as exc:  # TOML syntax errors surface as ValueError subclasses
        raise ConfigError("config", f"{config_file}: {exc}") from exc
    finally:
        _CONFIG_FILE.reset(token)
