"""Personalities and functions through the native API, on the scripted binding: what the
binding receives, scripted workflows (both forms) streamed end to end, and the tool loop."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
import types
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG, binding_of
from tests.live import serve_in_thread
from tests.zoo_fixture import LEGACY, LOGOS, PROBLEMS, SOUL

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "zoos" / "personalities"
FUNCTIONS = ROOT / "zoos" / "functions"

FAILING = """
async def run_workflow(prompt, params, context):
    await context.step_start("About to fail")
    await context.send("partial ")
    raise ValueError("the script broke")
"""
EXITING = """
import sys

async def run_workflow(prompt, params, context):
    sys.exit("bye")
"""
REPLACING = """
async def run_workflow(prompt, params, context):
    await context.set_content("Thinking...")
    await context.set_content("Final answer")
"""
SLEEPY = """
import asyncio

async def run_workflow(prompt, params, context):
    await context.step_start("Sleeping")
    await asyncio.sleep(30)
    return "never"
"""
ZOO_COMPAT = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        states = [{"name": "idle", "commands": {"hello": self.greet}, "default": self.other}]
        super().__init__(personality, None, states_list=states, callback=callback)
        self.ctx = personality.config["ctx_size"]

    def greet(self, command, full_context, callback, context_state, client):
        self.personality.step_start("greeting")
        self.personality.app.ShowBlockingMessage("working")
        self.personality.step_end("greeting")
        self.set_message_content(self.remove_text_from_string("hi there STOP tail", "stop"))

    def other(self, command, full_context, callback, context_state, client):
        self.set_message_content("other")

    def run_workflow(self, prompt, previous_discussion_text="", callback=None,
                     context_details=None, client=None):
        assert context_details["knowledge"] == "" and self.ctx > 0  # text, never None
        self.process_state(prompt, previous_discussion_text, callback)
"""
STREAM_BREAK = """
async def run_workflow(prompt, params, context):
    async for piece in context.stream_text("first", binding="single"):
        break  # left unfinished: its slot must not block the next generation
    return await context.generate("second", binding="single")
"""
ZOO_LEGACY_INIT = """
from lollms.personality import APScript, MSG_TYPE


class Processor(APScript):
    def __init__(self, personality):  # an older processor: no callback argument
        super().__init__(personality, None)

    def run_workflow(self, prompt, previous_discussion_text="", callback=None):
        self.full(f"legacy {MSG_TYPE.MSG_TYPE_FULL.name}")
"""
ZOO_BROKEN_INIT = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        raise RuntimeError("the processor needs a GPU")
"""
SLOW_IMPORT = """
import time

time.sleep(3)  # top-level code: runs at import


async def run_workflow(prompt, params, context):
    return "loaded"
"""
ZOO_SLOW_INIT = """
import time
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        time.sleep(3)
        super().__init__(personality, callback=callback)
"""
ZOO_FAILING = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, context_details, client, callback=None):
        self.step_start("Working")
        raise KeyError("missing thing")
"""
ZOO_OLD_STYLE = """
from lollms.types import MSG_TYPE
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text="", callback=None,
                     context_details=None, client=None):
        callback("checking", MSG_TYPE.MSG_TYPE_STEP_START)
        yes = self.yes_no("Is this a greeting?", context=prompt)
        callback("checking", MSG_TYPE.MSG_TYPE_STEP_END, {"status": yes})
        self.full(f"greeting={yes}; prompt={prompt}; history={previous_discussion_text!r}")
"""

ZOO_HELPERS = """
from ascii_colors import ASCIIColors, trace_exception
from lollms import config as lollms_config
from lollms.config import BaseConfig, ConfigTemplate, TypedConfig
from lollms.personality import APScript
from lollms.types import MSG_OPERATION_TYPE

try:
    from lollms.utilities import NoSuchHelper
    UTILITIES = "imported"
except ImportError as exc:
    UTILITIES = str(exc)


class Processor(APScript):
    def __init__(self, personality, callback=None):
        template = lollms_config.ConfigTemplate(
            [{"name": "rounds", "type": "int", "value": 2, "max": 3}])
        super().__init__(personality, TypedConfig(template, BaseConfig.from_template(template)),
                         callback=callback)

    def run_workflow(self, context_details, client, callback):
        self.callback = callback
        ASCIIColors.yellow("running")
        self.info(f"utilities: {UTILITIES}")
        self.step(f"{self.personality.name} / {self.personality.ai_message_prefix}")
        self.json("settings", {"rounds": self.personality_config.rounds})
        choice = self.multichoice_question("Which?", ["cats", "dogs", "birds"],
                                           context=context_details.prompt)
        self.set_message_content(f"choice={choice}: ")
        for _ in range(self.personality_config.rounds):
            self.add_chunk_to_message_content("+")
        streamed = self.generate("!@>user:\\nhi", 8, callback=self.callback)
        self.add_chunk_to_message_content(f" [{streamed}]")
        return "ignored: content was set"
"""


def _personality(root: Path, name: str, script_name: str, script: str) -> None:
    folder = root / "tests" / name
    if script_name == "processor.py":
        (folder / "scripts").mkdir(parents=True)
        (folder / "scripts" / "processor.py").write_text(script)
        (folder / "config.yaml").write_text(f"name: {name}\npersonality_conditioning: x\n")
    else:
        folder.mkdir(parents=True)
        (folder / script_name).write_text(script)
        (folder / "config.yaml").write_text(
            f"name: {name}\npersonality_conditioning: x\nscript: {script_name}\n"
        )


@pytest.fixture
def config_text(tmp_path: Path, fixture_zoo: Path) -> str:
    extra = tmp_path / "extra"
    _personality(extra, "failing", "workflow.py", FAILING)
    _personality(extra, "sleepy", "workflow.py", SLEEPY)
    _personality(extra, "slow_import", "workflow.py", SLOW_IMPORT)
    _personality(extra, "zoo_legacy_init", "processor.py", ZOO_LEGACY_INIT)
    _personality(extra, "stream_break", "workflow.py", STREAM_BREAK)
    _personality(extra, "zoo_compat", "processor.py", ZOO_COMPAT)
    _personality(extra, "zoo_broken_init", "processor.py", ZOO_BROKEN_INIT)
    _personality(extra, "zoo_slow_init", "processor.py", ZOO_SLOW_INIT)
    _personality(extra, "zoo_failing", "processor.py", ZOO_FAILING)
    _personality(extra, "zoo_old", "processor.py", ZOO_OLD_STYLE)
    _personality(extra, "unimportable", "workflow.py", "import not_a_module\n")
    _personality(extra, "zoo_helpers", "processor.py", ZOO_HELPERS)
    _personality(extra, "exiting", "workflow.py", EXITING)
    _personality(extra, "replacing", "workflow.py", REPLACING)
    (extra / "tests" / "odd").mkdir()
    (extra / "tests" / "odd" / "config.yaml").write_text(
        'name: odd\nmodel_top_k: .inf\nmodel_temperature: .nan\nscript: "\\0x.py"\n'
    )
    (extra / "tests" / "odd" / "assets").mkdir()
    (extra / "tests" / "odd" / "assets" / "logo.png").symlink_to("/etc/hostname")
    (extra / "tests" / "broken").mkdir()
    (extra / "tests" / "broken" / "config.yaml").write_text("name: [oops\n")
    return textwrap.dedent(BASE_CONFIG) + textwrap.dedent(f"""
    [paths]
    personalities = ["{fixture_zoo}", "{EXAMPLES}", "{extra}"]
    functions = ["{FUNCTIONS}"]

    [personalities]
    script_timeout = 1.0

    [aliases]
    poet = {{ personality = "haiku_poet" }}
    guide = {{ model = "fake/scripted-model", personality = "tour_guide" }}

    [bindings.raw]
    type = "scripted"
    models = ["raw-model"]
    chat_template = false

    [bindings.tools]
    type = "scripted_tools"
    tool_arguments = '{{"expression": "6 * 7"}}'

    [bindings.bad_args]
    type = "scripted_tools"
    tool_arguments = '{{"expr": "1"}}'

    [bindings.yes]
    type = "scripted"
    reply = "Yes, it is."

    [bindings.single]
    type = "scripted"
    reply = "one two three"
    max_concurrency = 1

    [bindings.planner]
    type = "scripted"
    reply = "1. Pack\\n2. Travel"

    [bindings.json]
    type = "scripted"
    reply = '{{"tool": "calculate", "arguments": {{"expression": "1 + 1"}}}}'
    """)


@pytest.fixture
async def client(tmp_path: Path, config_text: str) -> AsyncIterator[httpx.AsyncClient]:
    path = tmp_path / "config.toml"
    path.write_text(config_text)
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH
        ) as c,
    ):
        yield c


async def _sse(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    async with client.stream("POST", "/api/v1/generate", json={**body, "stream": True}) as r:
        assert r.status_code == 200, await r.aread()
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    return [json.loads(line[6:]) for line in lines]


async def test_listing_and_details(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/list_personalities")).json()
    ids = {p["id"] for p in body["personalities"]}
    assert len(LEGACY + SOUL) == 18
    assert len(ids) == 18 + 4 + 15
    assert set(LEGACY + SOUL) <= ids
    assert [e["folder"] for e in body["errors"]] == [*PROBLEMS, "broken"]
    assert "YAML aliases (*name) are not accepted" in body["errors"][0]["reason"]
    merchant = next(p for p in body["personalities"] if p["name"] == "Orion Merchant.")
    assert merchant["category"] == "scifi" and merchant["language"] == "english"
    assert merchant["scripted"] is False and merchant["welcome_message"].startswith('"Welcome')
    assert (merchant["author"], merchant["version"], merchant["format"]) == (
        "personality_maker prompted by a tester",
        "1.0",
        "config.yaml",
    )
    ledger = next(p for p in body["personalities"] if p["name"] == "LedgerLaTeX")
    assert (ledger["scripted"], ledger["script_kind"], ledger["script_available"]) == (
        True,
        "zoo",
        False,
    )
    assert ledger["has_logo"] is True and any("processor.py" in w for w in ledger["warnings"])
    planner = next(p for p in body["personalities"] if p["name"] == "Step Planner")
    assert (planner["scripted"], planner["script_kind"], planner["script_available"]) == (
        True,
        "workflow",
        True,
    )
    assert "folder" not in json.dumps(planner)  # no server paths
    details = (await client.get("/api/v1/personalities/generic/polyglot")).json()
    assert details["languages"] == ["english", "french"]
    assert details["sampling"]["temperature"] == 0.7
    assert details["extra"] == {"lollms_version": "0.9.0"} and len(details["prompts_list"]) == 12
    nested = (await client.get("/api/v1/personalities/tools/text/case_converter")).json()
    assert (nested["id"], nested["category"], nested["categories"]) == (
        "legacy_config_yaml/tools/text/case_converter",
        "text",
        ["tools"],
    )
    coach = (await client.get("/api/v1/personalities/song_coach")).json()
    assert (coach["format"], coach["categories"], coach["author"]) == (
        "SOUL.md",
        ["coaching", "music"],
        None,
    )
    missing = await client.get("/api/v1/personalities/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "personality_not_found"
    ambiguous = await client.get("/api/v1/personalities/snakecharmer")
    assert ambiguous.status_code == 409
    message = ambiguous.json()["error"]["message"]
    assert "soul_md/coding_python/snakecharmer" in message
    assert "legacy_config_yaml/coding_python/snakecharmer" in message
    chosen = await client.get("/api/v1/personalities/soul_md/coding_python/snakecharmer")
    assert chosen.status_code == 200 and chosen.json()["format"] == "SOUL.md"


async def test_logo(client: httpx.AsyncClient) -> None:
    for rel, data in LOGOS.items():
        logo = await client.get(f"/api/v1/personalities/{rel}/logo")
        assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
        assert logo.content == data and data.startswith(b"\x89PNG\r\n")
    short = await client.get("/api/v1/personalities/ledger_latex/logo")
    assert short.content == LOGOS["legacy_config_yaml/data_formatting/ledger_latex"]
    none = await client.get("/api/v1/personalities/tour_guide/logo")
    assert none.status_code == 404 and "no logo" in none.json()["error"]["message"]


async def test_personality_shapes_what_the_binding_receives(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "Where to eat?",
            "personality": "tour_guide",
            "user_name": "Ada",
            "parameters": {"temperature": 0.9},
        },
    )
    assert response.status_code == 200, response.text
    request = binding_of(client).requests[-1]
    system, user = request.messages
    assert system.role == "system" and user.content == "Where to eat?"
    assert system.content == (
        "You are Tour Guide, a friendly city guide. Answer Ada in two "
        "or three short,\npractical sentences. Today is "
        f"{date.today().isoformat()}."
    )
    p = request.params
    assert (p.temperature, p.top_k, p.top_p, p.repeat_penalty, p.max_tokens) == (
        0.9,
        40,
        0.9,
        1.1,
        256,
    )
    assert p.stop == ("!@>", "Traveller:")
    assert request.extra == {"repeat_last_n": 64}


async def test_translation_and_soul_md(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/generate", json={"prompt": "Salut", "personality": "tour_guide", "language": "fr"}
    )
    system = binding_of(client).requests[-1].messages[0].content
    assert system.startswith("Tu es Guide Touristique") and "traveller" in system
    bad = await client.post(
        "/api/v1/generate", json={"prompt": "x", "personality": "tour_guide", "language": "klingon"}
    )
    assert bad.status_code == 400 and "languages: english, french" in bad.text
    await client.post("/api/v1/generate", json={"prompt": "Sea?", "personality": "haiku_poet"})
    request = binding_of(client).requests[-1]
    assert request.messages[0].content.startswith("You are Haiku Poet.")
    assert request.params.temperature == 0.8 and request.params.stop == ()


async def test_completion_only_binding_gets_lollms_text(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/generate",
        json={"prompt": "Louvre?", "personality": "tour_guide", "binding_name": "raw"},
    )
    request = binding_of(client, "raw").requests[-1]
    assert request.messages == ()
    assert request.raw_prompt.startswith("!@>system:\nYou are Tour Guide")
    assert request.raw_prompt.endswith("\n!@>Traveller:\nLouvre?\n!@>Tour Guide:\n")
    await client.post(
        "/api/v1/generate",
        json={"prompt": "Hello", "personality": "orion_merchant", "raw_prompt": True},
    )
    raw = binding_of(client).requests[-1].raw_prompt
    assert raw.endswith(" !@>User:\nHello !@>orion_merchant.:\n")  # link_text is " "


async def test_openai_and_lollms_fronts_select_personalities(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    sdk = openai.AsyncOpenAI(
        base_url="http://testserver/v1",
        api_key=API_KEY,
        http_client=httpx.AsyncClient(transport=httpx.ASGITransport(app=app)),
    )
    await sdk.chat.completions.create(
        model="fake/scripted-model",
        messages=[{"role": "user", "content": "Moon?"}],
        extra_body={"personality": "haiku_poet"},
    )
    assert binding_of(client).requests[-1].messages[0].content.startswith("You are Haiku")
    await sdk.chat.completions.create(
        model="guide", messages=[{"role": "user", "content": "Rome?"}]
    )
    assert binding_of(client).requests[-1].messages[0].content.startswith("You are Tour")
    models = {m.id: m.owned_by for m in (await sdk.models.list()).data}
    assert models["poet"] == "default" and models["guide"] == "fake/scripted-model"
    chat = ollama.AsyncClient(
        host="http://testserver", headers=AUTH, transport=httpx.ASGITransport(app=app)
    )
    reply = await chat.chat(model="poet", messages=[{"role": "user", "content": "Sun?"}])
    assert reply.message.content == "Sun?"
    assert binding_of(client).requests[-1].messages[0].content.startswith("You are Haiku")
    listed = (await client.get("/lollms/v1/personalities")).json()
    assert any(p["name"] == "Haiku Poet" for p in listed)


async def test_own_script_streams_steps_and_text(client: httpx.AsyncClient) -> None:
    events = await _sse(
        client,
        {
            "prompt": "Trip to Rome",
            "personality": "step_planner",
            "binding_name": "planner",
            "personality_config": {"expression": "2 ** 10"},
        },
    )
    kinds = [(e["type"], e.get("kind")) for e in events]
    assert kinds[:5] == [
        ("step", "step_start"),
        ("step", "step_end"),
        ("step", "step"),
        ("step", "step"),
        ("step", "info"),
    ]
    assert events[1]["text"] == "Planned 2 step(s)"
    assert [e["text"] for e in events[2:4]] == ["Pack", "Travel"]
    assert events[4]["text"] == "calculate(2 ** 10) = 1024"
    chunks = "".join(e["content"] for e in events if e["type"] == "chunk")
    assert chunks == "1. Pack\n2. Travel"
    final = events[-1]
    assert final["type"] == "final" and final["output"][0]["data"] == chunks
    assert final["usage"]["completion_tokens"] == 8  # both generations counted
    first = binding_of(client, "planner").requests[-2]
    assert first.messages[0].content == "You are Step Planner, a methodical assistant."
    assert first.params.temperature == 0.2 and first.params.max_tokens == 96


async def test_zoo_processor_runs_unchanged(client: httpx.AsyncClient) -> None:
    events = await _sse(
        client,
        {
            "prompt": "A long text about cats.",
            "personality": "zoo_summarizer",
            "personality_config": {"max_words": 10, "bullet_points": True},
        },
    )
    assert [(e["type"], e.get("kind"), e.get("text")) for e in events[:2]] == [
        ("step", "step_start", "Summarizing"),
        ("step", "step_end", "Summarizing"),
    ]
    assert events[1]["ok"] is True
    request = binding_of(client).requests[-1]
    assert request.params.max_tokens == 40 and request.params.temperature == 0.1
    system, user = request.messages
    assert system.content == "You are a precise summarizer."
    assert user.content.startswith("Summarize in bullet points of at most 10 words:")
    assert events[-1]["output"][0]["data"] == user.content  # the scripted binding echoes
    bad = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "x",
            "personality": "zoo_summarizer",
            "personality_config": {"colour": 1},
            "stream": True,
        },
    )  # refused before the stream starts
    assert bad.status_code == 400
    assert "unknown setting(s) colour" in bad.json()["error"]["message"]
    wrong_type = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "x",
            "personality": "zoo_summarizer",
            "personality_config": {"max_words": [1]},
        },
    )
    assert wrong_type.status_code == 400


async def test_zoo_old_signature_and_yes_no(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "input_data": [
                {"type": "text", "role": "user", "data": "Hi"},
                {"type": "text", "role": "assistant", "data": "Hello"},
                {"type": "text", "role": "user", "data": "yes indeed"},
            ],
            "personality": "zoo_old",
            "binding_name": "yes",
        },
    )
    body = response.json()
    # As lollms passes it: the conditioning, the conversation, then the AI's header.
    assert body["output"][0]["data"] == (
        "greeting=True; prompt=yes indeed; history='!@>system:\\nx\\n!@>user:\\nHi\\n"
        "!@>assistant:\\nHello\\n!@>user:\\nyes indeed\\n!@>assistant:\\n'"
    )
    assert [(s["kind"], s["ok"]) for s in body["steps"]] == [
        ("step_start", None),
        ("step_end", True),
    ]
    asked = binding_of(client, "yes").requests[-1]
    assert asked.messages[-1].content == (
        "Context:\nyes indeed\n\nQuestion: Is this a greeting?\nAnswer with yes or no only."
    )
    assert asked.params.temperature == 0.0 and asked.params.max_tokens == 64


async def test_zoo_helpers_become_events(client: httpx.AsyncClient) -> None:
    lollms = types.ModuleType("lollms")  # an installed real lollms must neither be used
    sys.modules["lollms"] = lollms  # nor disturbed
    try:
        events = await _sse(
            client,
            {
                "prompt": "I like option 2",
                "personality": "zoo_helpers",
                "binding_name": "planner",
                "personality_config": {"rounds": 9},
            },
        )
    finally:
        assert sys.modules.pop("lollms") is lollms
    shown = [(e["type"], e.get("kind"), e.get("content") or e.get("text")) for e in events]
    assert shown[0] == (
        "chunk",
        None,
        "utilities: 'lollms.utilities.NoSuchHelper' is not provided by lollms_server's zoo "
        "compatibility layer",
    )
    assert shown[1] == ("step", "step", "zoo_helpers / assistant")
    assert events[2]["kind"] == "json"
    assert events[2]["data"]["items"] == [{"title": "settings", "content": '{\n    "rounds": 3\n}'}]
    assert shown[3] == ("set_content", None, "choice=1: ")  # "1. Pack" -> answer 1
    assert [c for t, _, c in shown[4:7]] == ["+", "+", "+"]  # rounds capped at max 3
    pieces = [c for t, _, c in shown[7:] if t == "chunk"]
    assert "".join(pieces) == "1. Pack\n2. Travel [1. Pack\n2. Travel]"
    final = events[-1]["output"][0]["data"]
    assert final == "choice=1: +++1. Pack\n2. Travel [1. Pack\n2. Travel]"


@pytest.mark.parametrize(
    ("name", "error_type", "needle"),
    [
        ("failing", "workflow_error", "ValueError: the script broke"),
        ("exiting", "workflow_error", "SystemExit: bye"),
        ("zoo_failing", "workflow_error", "KeyError: 'missing thing'"),
        ("sleepy", "workflow_timeout", "did not finish within 1 s"),
    ],
)
async def test_failing_and_slow_scripts_end_with_an_error_event(
    client: httpx.AsyncClient, name: str, error_type: str, needle: str
) -> None:
    started = time.perf_counter()
    events = await _sse(client, {"prompt": "go", "personality": name})
    assert time.perf_counter() - started < 5
    assert events[0]["type"] == "step" or name == "exiting"
    error = events[-1]
    assert error["type"] == "error" and error["error"]["type"] == error_type
    assert needle in error["error"]["message"]
    plain = await client.post("/api/v1/generate", json={"prompt": "go", "personality": name})
    assert plain.status_code == (504 if name == "sleepy" else 500)
    assert plain.json()["error"]["type"] == error_type


async def test_unloadable_script_is_refused_before_streaming(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate", json={"prompt": "go", "personality": "unimportable", "stream": True}
    )
    assert response.status_code == 503
    assert "ModuleNotFoundError" in response.json()["error"]["message"]


async def test_list_functions(client: httpx.AsyncClient) -> None:
    functions = (await client.get("/api/v1/list_functions")).json()["functions"]
    calc = next(f for f in functions if f["name"] == "calculate")
    assert calc["parameters"]["required"] == ["expression"] and not calc["is_async"]


async def test_native_tool_loop(client: httpx.AsyncClient) -> None:
    events = await _sse(
        client,
        {"prompt": "What is 6 times 7?", "binding_name": "tools", "functions": ["calculate"]},
    )
    call, result = events[0], events[1]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == (
        "tool_call",
        "calculate",
        {"expression": "6 * 7"},
    )
    assert (result["type"], result["content"], result["ok"]) == ("tool_result", "42", True)
    assert events[-1]["output"][0]["data"] == "The tool said: 42"
    request = binding_of(client, "tools").requests[-1]
    assert [m.role for m in request.messages] == ["user", "assistant", "tool"]
    assert request.messages[1].tool_calls[0]["function"]["name"] == "calculate"


async def test_invalid_arguments_go_back_to_the_model(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            "/api/v1/generate",
            json={"prompt": "1?", "binding_name": "bad_args", "functions": ["calculate"]},
        )
    ).json()
    result = next(o for o in body["output"] if o["type"] == "tool_result")["data"]
    assert result["ok"] is False and "expression: Field required" in result["content"]
    assert body["output"][0]["data"].startswith('The tool said: {"error": "invalid arguments')


async def test_prompt_protocol_loop(client: httpx.AsyncClient) -> None:
    body = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "What is 1 + 1?",
                "binding_name": "json",
                "functions": ["calculate"],
                "max_tool_rounds": 4,
            },
        )
    ).json()
    calls = [o for o in body["output"] if o["type"] == "tool_call"]
    results = [o["data"]["content"] for o in body["output"] if o["type"] == "tool_result"]
    # The model asks for the same call again in round 2: the loop answers instead.
    assert len(calls) == 1 and results == ["2"]
    requests = binding_of(client, "json").requests
    decision = requests[-3].messages[0].content
    assert decision.startswith("You can call functions") and '"calculate"' not in decision
    assert "- calculate: Evaluate an arithmetic expression." in decision
    final = requests[-1].messages[-1].content
    assert final.startswith('Function results:\n- calculate({"expression": "1 + 1"}) returned: 2')
    assert final.endswith("Using these results, answer:\nWhat is 1 + 1?")


async def test_function_errors(client: httpx.AsyncClient) -> None:
    missing = await client.post("/api/v1/generate", json={"prompt": "x", "functions": ["nope"]})
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "function_not_found"


@pytest.fixture(scope="module")
def live_slow(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("slow") / "config.toml"
    path.write_text(
        BASE_CONFIG.replace('ttt_binding = "fake"', 'ttt_binding = "slow"')
        + f"""
[paths]
personalities = "{EXAMPLES}"

[bindings.slow]
type = "scripted"
models = ["m"]
reply = "one two three four five six seven eight nine ten eleven twelve"
delay_s = 0.2
"""
    )
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest.mark.parametrize(
    ("personality", "until"), [("step_planner", '"chunk"'), ("zoo_summarizer", '"step_start"')]
)
async def test_disconnect_stops_a_workflow(live_slow, personality: str, until: str) -> None:  # type: ignore[no-untyped-def]
    app, url = live_slow
    binding = app.state.bindings.get("slow")
    before, started_before = binding.cancelled, len(binding.requests)
    body = {"prompt": "some text", "personality": personality, "stream": True}
    async with (
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=5) as client,
        client.stream("POST", "/api/v1/generate", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if until in line:
                break
    started = time.perf_counter()
    while app.state.scheduler.active_leases() or binding.running:
        assert time.perf_counter() - started < 1.5, "workflow still running after disconnect"
        await asyncio.sleep(0.01)
    # Every generation the workflow started was stopped (the client may also leave before
    # the zoo processor's thread started one: then there is nothing to stop).
    started = len(binding.requests) - started_before
    stopped = binding.cancelled - before
    if personality == "step_planner":  # the plan completed; the streamed answer was stopped
        assert (started, stopped) == (2, 1)
    else:
        assert stopped == started <= 1


async def test_hostile_or_odd_personality_files(client: httpx.AsyncClient) -> None:
    odd = (await client.get("/api/v1/personalities/odd")).json()
    assert odd["sampling"] == {} and odd["script_available"] is False
    assert any("not a usable number" in w for w in odd["warnings"])
    assert (await client.get("/api/v1/personalities/odd/logo")).status_code == 404


async def test_tool_loop_limits_and_refusals(client: httpx.AsyncClient) -> None:
    # The model asks for calculate, but the request enabled only current_time.
    body = (
        await client.post(
            "/api/v1/generate",
            json={"prompt": "1 + 1?", "binding_name": "json", "functions": ["current_time"]},
        )
    ).json()
    result = next(o for o in body["output"] if o["type"] == "tool_result")["data"]
    assert result == {
        "id": "call_1",
        "name": "calculate",
        "ok": False,
        "content": json.dumps({"error": "unknown function 'calculate'; available: current_time"}),
    }
    # A small max_tokens is for the answer, not for the function-call decision.
    body = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "1 + 1?",
                "binding_name": "json",
                "functions": ["calculate"],
                "parameters": {"max_tokens": 4},
            },
        )
    ).json()
    assert [o["type"] for o in body["output"]] == ["text", "tool_call", "tool_result"]
    raw = await client.post(
        "/api/v1/generate",
        json={"prompt": "1 + 1?", "raw_prompt": True, "functions": ["calculate"]},
    )
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "raw_prompt"
    scripted = await client.post(
        "/api/v1/generate",
        json={"prompt": "x", "personality": "step_planner", "functions": ["calculate"]},
    )
    assert scripted.status_code == 400 and "runs its own script" in scripted.text


async def test_lollms_generate_stream_shows_rewrites_and_errors(client: httpx.AsyncClient) -> None:
    async def stream(personality: str) -> str:
        async with client.stream(
            "POST",
            "/lollms_generate",
            json={"prompt": "!@>user: go", "personality": personality, "stream": True},
        ) as r:
            assert r.status_code == 200
            return (await r.aread()).decode()

    assert await stream("replacing") == "Thinking...\n\nFinal answer"
    async with client.stream(
        "POST",
        "/v1/completions",
        json={  # OpenAI completions too
            "model": "fake/scripted-model",
            "prompt": "go",
            "stream": True,
            "personality": "replacing",
        },
    ) as r:
        texts = [
            json.loads(line[6:])["choices"][0]["text"]
            async for line in r.aiter_lines()
            if line.startswith("data: {")
        ]
    assert "".join(texts) == "Thinking...\n\nFinal answer"
    assert await stream("failing") == (
        "partial \n\n[error: workflow_error: The script of "
        "personality 'tests/failing' failed: ValueError: the "
        "script broke]"
    )


@pytest.mark.parametrize("name", ["slow_import", "zoo_slow_init"])
async def test_slow_script_set_up_is_bounded_and_never_blocks_the_loop(
    client: httpx.AsyncClient, name: str
) -> None:
    """A script's top-level code and a zoo processor's constructor run in threads, under
    script_timeout (1 s here): the loop keeps serving meanwhile."""
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            await asyncio.sleep(0.05)
            beats += 1

    beating = asyncio.create_task(heartbeat())
    started = time.monotonic()
    response = await client.post("/api/v1/generate", json={"prompt": "x", "personality": name})
    elapsed = time.monotonic() - started
    beating.cancel()
    assert response.status_code == 504, response.text
    assert elapsed < 2.5
    assert beats >= 0.6 * elapsed / 0.05  # the loop was never stalled for long


async def test_zoo_processors_old_signatures_and_broken_constructors(
    client: httpx.AsyncClient,
) -> None:
    legacy = await client.post(
        "/api/v1/generate", json={"prompt": "x", "personality": "zoo_legacy_init"}
    )
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["output"][0]["data"] == "legacy MSG_TYPE_FULL"
    broken = await client.post(
        "/api/v1/generate", json={"prompt": "x", "personality": "zoo_broken_init"}
    )
    assert broken.status_code == 500
    assert "the processor needs a GPU" in broken.json()["error"]["message"]


async def test_translation_files_named_by_iso_code(tmp_path: Path) -> None:
    folder = tmp_path / "personalities" / "cat" / "bonjour"
    (folder / "languages").mkdir(parents=True)
    (folder / "config.yaml").write_text("name: bonjour\npersonality_conditioning: Hello.\n")
    (folder / "languages" / "fr.yaml").write_text("personality_conditioning: Bonjour.\n")
    from lollms_server.personalities.registry import PersonalityRegistry

    registry = PersonalityRegistry.discover([tmp_path / "personalities"])
    found = registry.get("bonjour")
    for asked in ("fr", "french", "FR"):
        assert registry.localized(found, asked).conditioning == "Bonjour."


async def test_prose_instead_of_a_tool_call_honours_max_tokens_and_stop(
    client: httpx.AsyncClient,
) -> None:
    """The model answers in prose when offered functions: the client's limits still hold."""
    capped = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "Is it?",
                "binding_name": "yes",
                "functions": ["calculate"],
                "parameters": {"max_tokens": 2},
            },
        )
    ).json()
    assert capped["output"][0]["data"].strip() == "Yes, it"
    assert capped["output"][0]["metadata"]["finish_reason"] == "length"
    stopped = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "Is it?",
                "binding_name": "yes",
                "functions": ["calculate"],
                "parameters": {"stop": ["is"]},
            },
        )
    ).json()
    assert stopped["output"][0]["data"].strip() == "Yes, it"


async def test_a_stream_left_unfinished_does_not_block_the_next_generation(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/generate", json={"prompt": "x", "personality": "stream_break"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["output"][0]["data"] == "one two three"


async def test_zoo_state_machine_and_personality_helpers(client: httpx.AsyncClient) -> None:
    """Helpers real zoo processors use: states_list/process_state, personality.step_*,
    app.ShowBlockingMessage, config["ctx_size"], context_details["knowledge"]."""
    hello = (
        await client.post("/api/v1/generate", json={"prompt": "hello", "personality": "zoo_compat"})
    ).json()
    assert hello["output"][0]["data"] == "hi there "
    assert [s["kind"] for s in hello["steps"]] == ["step_start", "info", "step_end"]
    other = (
        await client.post("/api/v1/generate", json={"prompt": "what?", "personality": "zoo_compat"})
    ).json()
    assert other["output"][0]["data"] == "other"
