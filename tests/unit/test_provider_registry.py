"""The provider registry: one line per provider, read by `Secrets` and by the composition root.

A model naming a registered provider needs that provider's key (and settings), and start-up
stops with a `StartupError` that names the variable or setting to set; the registry is complete
(every provider module that declares a `SPEC` is registered) and each spec builds its client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from bot.app import StartupError, build_app
from core.config import Config, GenerationConfig, ModelConfig, Secrets, secret_names
from providers import PROVIDERS, Setup

ROOT = Path(__file__).resolve().parents[2]


def _config(provider: str, **generation: str) -> Config:
    model = ModelConfig(id=f"{provider}-model", name="M", provider=provider,
                        kind="text-to-video", credits=1)
    return Config(models=(model,), generation=GenerationConfig(**generation))  # type: ignore[arg-type]


async def _start(config: Config, secrets: Secrets) -> None:
    async with build_app(config, secrets):
        pytest.fail("started without what the provider needs")


def test_every_provider_module_with_a_spec_is_registered() -> None:
    declared = set()
    for path in (ROOT / "providers").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "SPEC" for t in node.targets)
               for node in tree.body):
            declared.add(path.stem)
    assert declared == {"kie", "evolink", "image"}
    assert set(PROVIDERS) == declared
    assert all(name == spec.name for name, spec in PROVIDERS.items())


def test_secrets_keep_each_registered_key_and_nothing_unknown() -> None:
    keys = {spec.key_variable for spec in PROVIDERS.values()}
    assert keys == {"KIE_API_KEY", "EVOLINK_API_KEY", "IMAGE_API_KEY"}
    assert keys <= secret_names()
    values = {k: "v" * 20 for k in keys} | {"NOT_A_SECRET": "x", "HOME": "/root"}
    assert set(Secrets(values)) == keys


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_missing_key_stops_the_start_naming_the_variable(name: str) -> None:
    spec = PROVIDERS[name]
    settings = {setting: "https://gateway.example" for setting, _ in spec.settings}
    with pytest.raises(StartupError, match=f"set the environment variable {spec.key_variable}"):
        await _start(_config(name, **settings), Secrets({}))


async def test_a_missing_setting_stops_the_start_naming_it() -> None:
    with pytest.raises(StartupError,
                       match=r"set \[generation\] image_base_url to the gateway's URL"):
        await _start(_config("image"), Secrets({"IMAGE_API_KEY": "k" * 20}))


async def test_an_unknown_provider_stops_the_start_naming_the_known_ones() -> None:
    with pytest.raises(StartupError,
                       match="unknown provider 'nope' \\(known: demo, kie, evolink, image\\)"):
        await _start(_config("nope"), Secrets({}))


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_each_spec_builds_its_client(name: str) -> None:
    spec = PROVIDERS[name]
    async with httpx.AsyncClient() as http:
        client = spec.build(Setup(http=http, api_key="k" * 20, settings={
            setting: "https://gateway.example" for setting, _ in spec.settings}))
    assert client.name == name
