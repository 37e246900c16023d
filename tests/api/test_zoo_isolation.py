"""Zoo processors run in a process of their own, one per request: its limits (CPU time,
memory, open files, file size) end only its request, with an error naming the limit; it
cannot signal the server, read the server's secrets from its process, or outlive its
request; what it generates still flows through the server's binding and usage."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.test_zoo_processors import generate, server_config, serving, zoo_personality

PROBE = """
import asyncio
import json
import os
import signal
from pathlib import Path

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        out = {"pid": os.getpid(), "environ": Path("/proc/self/environ").read_bytes().decode()}
        try:
            os.kill(os.getppid(), signal.SIGTERM)
            out["signal"] = "sent"
        except PermissionError as exc:
            out["signal"] = str(exc)
        files = []
        try:
            for i in range(100):
                files.append(open(os.devnull))
            out["files"] = "opened"
        except OSError as exc:
            out["files"] = f"{type(exc).__name__}: {exc.strerror}"
        for file in files:
            file.close()
        try:
            Path("big.bin").write_bytes(b"x" * (3 << 20))
            out["big"] = "written"
        except OSError as exc:
            out["big"] = f"{type(exc).__name__}: {exc.strerror}"
        out["answer"] = self.fast_gen(previous_discussion_text, 50)
        self.set_message_content(json.dumps(out))
"""
GREEDY = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        self.step_start("Eating memory")
        hoard = bytearray(600 << 20)
        return str(len(hoard))
"""
SPINS = """
import os
from pathlib import Path

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        Path("pid").write_text(str(os.getpid()))
        while True:
            pass
"""
SLEEPS = """
import os
import time
from pathlib import Path

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        Path("pid").write_text(str(os.getpid()))
        time.sleep(60)
"""
LOUD = """
import logging

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        for i in range(400):
            logging.getLogger("chatty").warning("line %d", i)
        return "said it all"
"""
SWARM = """
import asyncio
import json
import threading

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        errors = []

        def ask():
            try:
                self.personality.model.generate("!@>user:\\nhi", 2)
            except Exception as exc:
                errors.append(str(exc))

        threading.stack_size(256 << 10)  # 80 threads within processor_memory_mb
        threads = [threading.Thread(target=ask) for _ in range(80)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return json.dumps(sorted(set(errors)))
"""
LIMITS = """
[personalities]
script_timeout = 8
processor_cpu_seconds = 2
processor_memory_mb = 400
processor_open_files = 64
processor_file_mb = 1

[resources]
max_queue = 1000

[bindings.slowgen]
type = "scripted"
reply = "a b"
delay_s = 1.0
max_concurrency = 100
"""


INSTALLS = """
import sys
from pathlib import Path

from lollms.personality import APScript

sys.path.insert(0, str(Path(__file__).parent))
import installer_lib  # a library of its own: the processor's guards do not reach inside

AT_IMPORT = installer_lib.try_installs()  # lollmsvectordb installs docling when imported


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        self.set_message_content("[" + AT_IMPORT + ", " + installer_lib.try_installs() + "]")
"""
INSTALLER_LIB = """
import json
import os
import subprocess
import sys


def try_installs():
    out = {}
    try:  # what pipmaster does for lollmsvectordb at import
        subprocess.run([sys.executable, "-m", "pip", "install", "lollms-test-never-a"])
        out["subprocess"] = "ran"
    except PermissionError as exc:
        out["subprocess"] = str(exc)
    try:
        os.system("pip install -q lollms-test-never-b")
        out["system"] = "ran"
    except PermissionError as exc:
        out["system"] = str(exc)
    out["echo"] = subprocess.run(["echo", "fine"], capture_output=True, text=True).stdout
    return json.dumps(out)
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    root = tmp_path / "personalities"
    zoo_personality(root, "probe", PROBE)
    zoo_personality(root, "installs", INSTALLS)
    (root / "zoo" / "installs" / "scripts" / "installer_lib.py").write_text(INSTALLER_LIB)
    zoo_personality(root, "greedy", GREEDY)
    zoo_personality(root, "spins", SPINS)
    zoo_personality(root, "sleeps", SLEEPS)
    zoo_personality(root, "loud", LOUD)
    zoo_personality(root, "swarm", SWARM)
    async with serving(server_config(root, textwrap.dedent(LIMITS)), tmp_path) as c:
        yield c


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" in status  # a zombie is dead, waiting to be reaped


async def test_a_processor_runs_in_its_own_limited_process(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_SERVER_TOKEN", "sk-do-not-leak")
    response = await generate(
        client,
        prompt="hi",
        personality="probe",
        binding_name="words",
        parameters={"max_tokens": 3},
    )
    assert response.status_code == 200, response.text
    out = json.loads(response.json()["output"][0]["data"])
    assert out["pid"] != os.getpid() and _gone(out["pid"])  # its own, ended with the request
    assert "sk-do-not-leak" not in out["environ"]  # not even in its process's memory
    assert "ZOO_SERVER_TOKEN" not in out["environ"]
    assert "may not signal the server's process" in out["signal"]
    assert out["files"] == "OSError: Too many open files"  # processor_open_files = 64
    assert out["big"] == "OSError: File too large"  # processor_file_mb = 1
    assert out["answer"].strip() == "one two three"  # generated by the server, held to max_tokens
    assert response.json()["usage"]["completion_tokens"] == 3


async def test_a_library_a_processor_imports_cannot_install_packages_either(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(client, prompt="hi", personality="installs")
    assert response.status_code == 200, response.text
    for out in json.loads(response.json()["output"][0]["data"]):  # at import, then at run
        assert "installing lollms-test-never-a" in out["subprocess"]
        assert "was refused" in out["subprocess"]
        assert "installing lollms-test-never-b" in out["system"]
        assert "was refused" in out["system"]
        assert out["echo"] == "fine\n"  # other programs still run
    warnings = [s["text"] for s in response.json()["steps"] if s["kind"] == "warning"]
    assert any("lollms-test-never-a" in w for w in warnings)  # the client is told


async def test_a_processor_past_its_memory_limit_fails_alone(client: httpx.AsyncClient) -> None:
    response = await generate(client, prompt="hi", personality="greedy")
    assert response.status_code == 500
    assert "MemoryError" in response.json()["error"]["message"]
    again = await generate(client, prompt="hi", personality="probe", binding_name="words")
    assert again.status_code == 200  # the server and the next processor are unaffected


async def test_a_processor_past_its_cpu_time_is_stopped_naming_the_limit(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(client, prompt="hi", personality="spins")
    assert response.status_code == 500, response.text
    message = response.json()["error"]["message"]
    assert "personality 'zoo/spins' stopped: it used its 2 s of CPU time" in message


async def test_a_processor_does_not_outlive_its_request(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await generate(client, prompt="hi", personality="sleeps")
    assert response.status_code == 504  # script_timeout = 8
    pid = int((tmp_path / "personality_data" / "zoo" / "sleeps" / "pid").read_text())
    assert _gone(pid)


async def test_a_processor_cannot_flood_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lollms_server")
    response = await generate(client, prompt="hi", personality="loud")
    assert response.status_code == 200, response.text
    relayed = [r for r in caplog.records if r.name == "lollms_server.personalities.processor"]
    assert 50 <= len(relayed) <= 300  # 100 a second pass; 400 in a burst do not
    assert relayed[0].getMessage() == "line 0"
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped and "log line(s) of its processor dropped" in dropped[-1]


async def test_a_processor_has_a_bounded_number_of_calls_in_flight(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(client, prompt="hi", personality="swarm", binding_name="slowgen")
    assert response.status_code == 200, response.text
    errors = json.loads(response.json()["output"][0]["data"])
    assert any("more than 64 calls to the server at once" in e for e in errors), errors


async def test_a_processor_that_dies_between_its_build_and_its_run_fails_at_once(
    client: httpx.AsyncClient,
) -> None:
    from lollms_server.bindings.types import Message
    from lollms_server.errors import WorkflowFailed
    from lollms_server.generation.requests import GenerationRequest
    from lollms_server.personalities.zoo.isolated import ProcessorProcess, ZooRunner

    service = client._transport.app.state.generation  # type: ignore[attr-defined]
    personality = service.personalities.get("zoo/probe")
    request = GenerationRequest(binding_name="words", messages=(Message("user", "hi"),))
    limits = service.settings.personalities.processor_limits()
    process = ProcessorProcess(personality, request, service, limits, service._processor_pool())
    runner = ZooRunner(process)
    await runner.prepare()
    assert process.proc is not None
    process.proc.kill()  # dies after its build, before its run
    await process.proc.wait()
    await asyncio.sleep(0.1)  # its reader sees the end

    async def emit(event: object) -> None:
        return None

    with pytest.raises(WorkflowFailed, match="stopped: it was killed"):
        await asyncio.wait_for(runner(emit), 5)
