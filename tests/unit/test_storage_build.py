"""build_storage: the backend the config names, and clear errors for what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ConfigError, StorageConfig, load_config
from storage import (
    LocalStorage,
    S3Storage,
    Storage,
    StorageConfigError,
    build_storage,
    open_storage,
)

LINK = {"MEDIA_LINK_SECRET": "a-long-enough-link-secret"}
S3_KEYS = {"S3_ACCESS_KEY_ID": "AKIDEXAMPLE", "S3_SECRET_ACCESS_KEY": "very-secret-value"}
PUBLIC = "https://bot.example"


def storage_config(tmp_path: Path, **values: str) -> StorageConfig:
    """A [storage] table read through the real config loader."""
    file = tmp_path / "config.toml"
    file.write_text("[storage]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return load_config(file, environ={}).storage


@pytest.fixture
def s3(tmp_path: Path) -> StorageConfig:
    return storage_config(tmp_path, backend="s3", bucket="media",
                          s3_endpoint_url="http://127.0.0.1:9")


def test_local_backend(tmp_path: Path) -> None:
    config = storage_config(tmp_path, local_dir=str(tmp_path / "media"))
    storage = build_storage(config, public_url=PUBLIC, secrets=LINK)
    assert isinstance(storage, LocalStorage)
    assert isinstance(storage, Storage)
    assert storage.root == tmp_path / "media"


@pytest.mark.parametrize("secrets", [{}, {"MEDIA_LINK_SECRET": ""}])
def test_local_backend_names_the_missing_secret(tmp_path: Path, secrets: dict[str, str]) -> None:
    with pytest.raises(StorageConfigError, match="MEDIA_LINK_SECRET"):
        build_storage(storage_config(tmp_path), public_url=PUBLIC, secrets=secrets)


def test_local_backend_refuses_a_short_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MEDIA_LINK_SECRET.*at least 16") as info:
        build_storage(storage_config(tmp_path), public_url=PUBLIC,
                      secrets={"MEDIA_LINK_SECRET": "short"})
    assert "short" not in str(info.value).replace("at least", "")


def test_s3_backend(s3: StorageConfig) -> None:
    storage = build_storage(s3, public_url=PUBLIC, secrets=S3_KEYS)
    assert isinstance(storage, S3Storage)
    assert isinstance(storage, Storage)
    assert "very-secret-value" not in repr(storage)


@pytest.mark.parametrize("missing", sorted(S3_KEYS))
def test_s3_backend_names_the_missing_secret(s3: StorageConfig, missing: str) -> None:
    secrets = {k: v for k, v in S3_KEYS.items() if k != missing}
    with pytest.raises(StorageConfigError, match=missing) as info:
        build_storage(s3, public_url=PUBLIC, secrets=secrets)
    assert "very-secret-value" not in str(info.value)


def test_s3_backend_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage\.bucket"):
        build_storage(storage_config(tmp_path, backend="s3"), public_url=PUBLIC,
                      secrets=S3_KEYS)


async def test_open_storage_closes_the_backend(s3: StorageConfig) -> None:
    async with open_storage(s3, public_url=PUBLIC, secrets=S3_KEYS) as storage:
        assert isinstance(storage, S3Storage)
