"""The README's tools and Responses examples, run as written (each a Python block marked
``<!-- example -->`` in its "Tools and the Responses API" section) against a live server
whose default text binding calls tools (scripted, so that the output is known)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Tools and the Responses API"
CONFIG = (
    BASE_CONFIG.replace('ttt_binding = "fake"', 'ttt_binding = "tools"')
    + '\n[bindings.tools]\ntype = "scripted_tools"\n'
)


def examples(readme: str) -> list[str]:
    """The Python blocks marked as examples in the section (none: no such section)."""
    if HEADING not in readme:
        return []
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"<!-- example -->\n```python\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("readme_tools") / "config.toml"
    path.write_text(CONFIG)
    with serve_in_thread(create_app(load_config(path))) as served:
        yield served


def run_example(code: str, url: str, folder: Path) -> str:
    env = {**os.environ, "LOLLMS_URL": url, "LOLLMS_KEY": API_KEY}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_tools_and_responses_examples_run(url: str, tmp_path: Path) -> None:
    blocks = examples(README.read_text())
    if not blocks:
        pytest.skip(f"README.md has no '{HEADING}' section yet")
    assert len(blocks) == 2
    tools = run_example(blocks[0], url, tmp_path).splitlines()
    assert tools == [
        'call: get_weather {"city": "Paris"}',
        "answer: The tool said: Sunny, 21 C in Paris",
    ]
    responses = run_example(blocks[1], url, tmp_path).splitlines()
    assert responses == [
        "first: Name a colour.",
        "follow-up: And another one?",
        "Count to three.",
        'call: get_weather {"city": "Paris"}',
        "answer: The tool said: Sunny, 21 C",
    ]
