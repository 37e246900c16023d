"""Shared fixtures: configs written to disk and loaded through the real loader, apps served
in process through httpx's ASGI transport."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import Settings, load_config
from tests.zoo_fixture import SKIP_REASON, real_zoo, write_zoo

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

BASE_CONFIG = f"""
[server]
port = 9601

[security]
[[security.api_keys]]
name = "tests"
key = "{API_KEY}"

[defaults]
ttt_binding = "fake"

[bindings.fake]
type = "scripted"
models = ["scripted-model", "other-model"]
"""


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def make_settings(write_config: Callable[[str], Path]) -> Callable[[str], Settings]:
    def make(extra: str = "", base: str = BASE_CONFIG) -> Settings:
        return load_config(write_config(textwrap.dedent(base) + textwrap.dedent(extra)))

    return make


@pytest.fixture
def make_client(
    make_settings: Callable[[str], Settings],
) -> Callable[..., httpx.AsyncClient]:
    def make(extra: str = "", base: str = BASE_CONFIG, auth: bool = True) -> httpx.AsyncClient:
        app = create_app(make_settings(extra, base))
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=AUTH if auth else {},
        )

    return make


@pytest.fixture
async def client(make_client: Callable[..., httpx.AsyncClient]) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture(scope="session")
def fixture_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The personalities zoo of tests/zoo_fixture.py, written once per session: read it, or
    copy it before changing anything."""
    return write_zoo(tmp_path_factory.mktemp("fixture_zoo"))


@pytest.fixture(scope="session")
def real_zoo_root() -> Path:
    """The real zoo checkout named by LOLLMS_TEST_ZOO; skips the test when it is unset."""
    try:
        path = real_zoo()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    if path is None:
        pytest.skip(SKIP_REASON)
    return path


def binding_of(client: httpx.AsyncClient, name: str = "fake"):  # type: ignore[no-untyped-def]
    """The live binding instance behind an in-process client (to inspect what it received)."""
    app = client._transport.app  # type: ignore[attr-defined]
    return app.state.bindings.get(name)
