"""The real `lollms-server` process, as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.llama_support import needs_llama

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "lollms_server"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def initialised(tmp_path: Path) -> tuple[Path, str]:
    """`lollms-server init`, as the README's serve command runs it: (config path, key)."""
    zoos = Path(__file__).resolve().parents[2] / "zoos"
    result = _run(
        "init",
        "--config",
        "config.toml",
        "--personalities",
        str(zoos / "personalities"),
        "--functions",
        str(zoos / "functions"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    key = next(w for w in result.stdout.split() if w.startswith("lollms_"))
    return tmp_path / "config.toml", key


@pytest.fixture
def server(initialised: tuple[Path, str]) -> Iterator[tuple[str, str]]:
    config, key = initialised
    config.write_text(config.read_text().replace("n_parallel = 4", "n_parallel = 2"))
    port = _free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not answer /health"
            time.sleep(0.05)
        yield url, key
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert key not in out  # the key never appears in the server's output


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
def test_fresh_config_serves_a_real_answer(server: tuple[str, str], mark: int) -> None:
    url, key = server
    assert httpx.post(f"{url}/api/v1/generate", json={"prompt": "hi"}).status_code == 401
    response = httpx.post(
        f"{url}/api/v1/generate",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "prompt": "What is the capital of France?",
            "parameters": {"temperature": 0, "max_tokens": 30},
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["output"][0]["data"]
    with httpx.stream(
        "POST",
        f"{url}/api/v1/generate",
        headers={"X-API-Key": key},
        timeout=120,
        json={"prompt": "Say hello", "stream": True, "parameters": {"max_tokens": 10}},
    ) as streamed:
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert len(lines) >= 3 and '"type":"final"' in lines[-1]
    auth = {"Authorization": f"Bearer {key}"}
    listed = httpx.get(f"{url}/api/v1/list_personalities", headers=auth).json()
    assert {p["name"] for p in listed["personalities"]} == {
        "Tour Guide",
        "Haiku Poet",
        "Step Planner",
        "Zoo Summarizer",
    }
    functions = httpx.get(f"{url}/api/v1/list_functions", headers=auth).json()["functions"]
    assert len(functions) == 4
    speech = httpx.post(
        f"{url}/v1/audio/speech",
        headers=auth,
        timeout=60,
        json={"model": "default", "input": "Hello!", "voice": "en_US-joe-medium"},
    )
    assert speech.status_code == 200 and speech.content[:4] == b"RIFF"


def test_init_stores_only_the_hash(initialised: tuple[Path, str]) -> None:
    config, key = initialised
    text = config.read_text()
    assert key not in text
    import hashlib

    assert hashlib.sha256(key.encode()).hexdigest() in text


def test_keys_add_list_remove(initialised: tuple[Path, str]) -> None:
    config, first = initialised
    cwd = config.parent
    added = _run("keys", "add", "ci-bot", "--config", str(config), cwd=cwd)
    assert added.returncode == 0, added.stderr
    new_key = next(w for w in added.stdout.split() if w.startswith("lollms_"))
    assert new_key not in config.read_text()
    listed = _run("keys", "list", "--config", str(config), cwd=cwd)
    assert listed.stdout.split() == ["admin", "(sha256)", "ci-bot", "(sha256)"]
    assert first not in listed.stdout and new_key not in listed.stdout
    assert _run("keys", "add", "ci-bot", "--config", str(config), cwd=cwd).returncode == 1
    assert _run("keys", "remove", "ci-bot", "--config", str(config), cwd=cwd).returncode == 0
    listed = _run("keys", "list", "--config", str(config), cwd=cwd)
    assert "ci-bot" not in listed.stdout
    assert _run("keys", "remove", "ci-bot", "--config", str(config), cwd=cwd).returncode == 1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[server\n", "TOML syntax error"),
        ("[server]\nportt = 1\n", "server.portt"),
        ('[server]\nport = "x"\n', "server.port"),
        (
            '[security]\nallow_no_keys = true\n[bindings.a]\ntype = "warp-drive"\n',
            "bindings.a.type",
        ),
        (
            '[security]\nallow_no_keys = true\n[bindings.a]\ntype = "llamacpp"\nn_ctx = "big"\n',
            "bindings.a.n_ctx",
        ),
        ("[server]\nport = 1\n", "security.api_keys"),
        (
            '[security]\nallow_no_keys = true\n[defaults]\nttt_binding = "nope"\n',
            "defaults.ttt_binding",
        ),
        (
            '[security]\nallow_no_keys = true\n[defaults]\nembed_binding = "nope"\n',
            "defaults.embed_binding",
        ),
        ('[security]\nallow_no_keys = true\n[aliases]\nfast = "nope/model"\n', "aliases.fast"),
        ('[security]\nallow_no_keys = true\n[aliases]\nfast = "demo/"\n', "aliases"),
        (
            '[security]\nallow_no_keys = true\n[aliases]\nfast = { personality = "nobody" }\n',
            "aliases.fast.personality",
        ),
        (
            '[security]\nallow_no_keys = true\n[resources]\ngpu_memory = ["auto", "8GiB"]\n',
            "resources.gpu_memory",
        ),
        (
            "[security]\nallow_no_keys = true\n[resources]\nsystem_memory = true\n",
            "resources.system_memory",
        ),
        (
            '[security]\nallow_no_keys = true\n[resources]\npreload = ["demo/"]\n',
            "resources.preload",
        ),
        (b'[server]\nhost = "\xff\xfe"\n', "not UTF-8"),
    ],
)
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, text: str | bytes, needle: str) -> None:
    path = tmp_path / "config.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    for command in (["serve"], ["check"]):
        result = _run(*command, "--config", str(path), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert needle in result.stderr
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr


def test_key_edits_always_leave_a_loadable_file(tmp_path: Path) -> None:
    """keys add/remove and init write only files that still load, owner-readable only."""
    config = tmp_path / "config.toml"
    odd = 'a"b\\c'  # quotes and backslashes must be escaped, not pasted into TOML
    assert _run("init", "--config", str(config), "--key-name", odd, cwd=tmp_path).returncode == 0
    assert (config.stat().st_mode & 0o077) == 0
    assert _run("keys", "list", "--config", str(config), cwd=tmp_path).stdout.split()[0] == odd
    for name in ("", "a\nb"):
        bad = _run("keys", "add", name, "--config", str(config), cwd=tmp_path)
        assert bad.returncode == 2 and "invalid key name" in bad.stderr
    removed = _run("keys", "remove", odd, "--config", str(config), cwd=tmp_path)
    assert removed.returncode == 0 and "No key left" in removed.stderr
    assert _run("keys", "add", "again", "--config", str(config), cwd=tmp_path).returncode == 0
    inline = tmp_path / "inline.toml"  # keys written inline by hand
    inline.write_text("security = { allow_no_keys = true, api_keys = [] }\n")
    assert _run("keys", "add", "bob", "--config", str(inline), cwd=tmp_path).returncode == 0
    listed = _run("keys", "list", "--config", str(inline), cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout.split()[0] == "bob"


def test_check_reports_found_and_failed_plugins(initialised: tuple[Path, str]) -> None:
    config, _ = initialised
    plugins = config.parent / "bindings"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise ImportError('missing engine')\n")
    result = _run("check", "--config", str(config), cwd=config.parent)
    assert result.returncode == 1
    assert "ok llamacpp" in result.stdout
    assert "x broken" in result.stdout and "missing engine" in result.stdout
    (plugins / "broken.py").unlink()
    result = _run("check", "--config", str(config), cwd=config.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No problems found." in result.stdout
    # A plugin that exits, one that shadows a built-in, and an instance of a failed plugin.
    (plugins / "exiter.py").write_text("import sys\nsys.exit('plugin says bye')\n")
    (plugins / "shadow.py").write_text(
        "from lollms_server.bindings.testing import ScriptedBinding\n"
        "class Shadow(ScriptedBinding):\n    name = 'scripted'\n"
    )
    (plugins / "broken.py").write_text("raise RuntimeError('boom')\n")
    config.write_text(config.read_text() + '\n[bindings.b]\ntype = "broken"\n')
    result = _run("check", "--config", str(config), cwd=config.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "plugin says bye" in result.stdout
    assert "binding type 'scripted' is declared by" in result.stdout
    assert "x b (broken)" in result.stdout and "boom" in result.stdout


def test_every_command_has_help(tmp_path: Path) -> None:
    for command in (
        [],
        ["serve"],
        ["init"],
        ["keys"],
        ["keys", "add"],
        ["keys", "list"],
        ["keys", "remove"],
        ["check"],
    ):
        result = _run(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0
        assert "Usage:" in result.stdout and len(result.stdout) > 80


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
def test_real_process_speaks_openai_ollama_and_lollms_client(
    server: tuple[str, str], mark: int
) -> None:
    """The official clients against the real `lollms-server serve` process and SmolLM2."""
    import ollama
    import openai
    from lollms_client import LollmsClient

    url, key = server
    model = "default_llm/SmolLM2-135M-Instruct.Q4_1"
    question = [{"role": "user", "content": "What is the capital of France?"}]
    oa = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    assert model in [m.id for m in oa.models.list()]
    reply = oa.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=30)
    assert "Paris" in (reply.choices[0].message.content or "")
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in oa.chat.completions.create(
            model=model, messages=question, temperature=0, max_tokens=30, stream=True
        )
        if c.choices
    )
    assert "Paris" in streamed
    ol = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"})
    assert model in [m.model for m in ol.list().models]
    answer = ol.chat(model=model, messages=question, options={"temperature": 0})
    assert "Paris" in answer.message.content
    lc = LollmsClient(
        llm_binding_name="lollms",
        llm_binding_config={"host_address": url, "model_name": model, "service_key": key},
    )
    assert "Paris" in lc.generate_text(
        "What is the capital of France?", temperature=0.0, n_predict=30
    )
    assert lc.count_tokens("Hello world") == 2
