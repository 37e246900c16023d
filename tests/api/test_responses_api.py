"""The Responses API (``/v1/responses``) with the official openai SDK: plain, streamed, a
function tool round trip, previous_response_id (per API key), structured output."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, needs_llama

OTHER_KEY = "other-key-" + "x" * 32
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
CONFIG = (
    BASE_CONFIG.replace(
        "[defaults]",
        f'[[security.api_keys]]\nname = "other"\nkey = "{OTHER_KEY}"\n\n[defaults]',
    )
    + '\n[bindings.tools]\ntype = "scripted_tools"\n'
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("responses") / "config.toml"
    path.write_text(CONFIG)
    with serve_in_thread(create_app(load_config(path))) as base:
        yield base + "/v1"


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=API_KEY, max_retries=0)


def test_plain_response(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="fake/scripted-model", input="hello there", instructions="Be brief."
    )
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_")
    assert response.output_text == "hello there"
    assert response.output[0].type == "message"
    assert response.usage is not None and response.usage.output_tokens == 2
    assert response.instructions == "Be brief."
    messages = client.responses.create(
        model="fake/scripted-model",
        input=[
            {"role": "developer", "content": "Answer plainly."},
            {"role": "user", "content": [{"type": "input_text", "text": "one two three"}]},
        ],
        max_output_tokens=2,
        temperature=0.5,
        top_p=0.9,
    )
    assert messages.output_text == "one two "
    assert messages.status == "incomplete"
    assert messages.incomplete_details is not None
    assert messages.incomplete_details.reason == "max_output_tokens"


def test_streamed_response_has_the_typed_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="fake/scripted-model", input="a b c", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds and "response.content_part.added" in kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "a b c" and len(deltas) == 3
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == "a b c"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "a b c" and final.usage is not None
    stored = client.responses.retrieve(final.id)
    assert stored.output_text == "a b c"


def test_function_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="tools/scripted-model", input="Weather in Paris?", tools=TOOLS
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(
        model="tools/scripted-model",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=TOOLS,
    )
    assert second.output_text == "The tool said: sunny"
    assert second.previous_response_id == first.id
    replayed = client.responses.create(  # the whole history given back as input instead
        model="tools/scripted-model",
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            calls[0].model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "rain"},
        ],
        tools=TOOLS,
    )
    assert replayed.output_text == "The tool said: rain"


def test_function_call_streamed(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model="tools/scripted-model",
            input="Weather in Paris?",
            tools=TOOLS,
            tool_choice={"type": "function", "name": "get_weather"},
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Paris"}
    final = events[-1]
    assert final.type == "response.completed"
    assert [item.type for item in final.response.output] == ["function_call"]


def test_previous_response_id_continues_and_stays_with_its_key(
    client: openai.OpenAI, url: str
) -> None:
    first = client.responses.create(model="fake/scripted-model", input="remember blue")
    second = client.responses.create(
        model="fake/scripted-model", input="what colour?", previous_response_id=first.id
    )
    assert second.output_text == "what colour?"  # the scripted model echoes the last turn
    other = openai.OpenAI(base_url=url, api_key=OTHER_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="No stored response"):
        other.responses.create(
            model="fake/scripted-model", input="hi", previous_response_id=first.id
        )
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    unstored = client.responses.create(model="fake/scripted-model", input="x", store=False)
    with pytest.raises(openai.NotFoundError, match="store=false"):
        client.responses.create(
            model="fake/scripted-model", input="y", previous_response_id=unstored.id
        )
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)


def test_store_is_bounded() -> None:
    from lollms_server.api.openai_responses.store import ResponseStore, Stored

    store = ResponseStore(max_per_key=3)
    for i in range(5):
        store.put("k", f"r{i}", Stored((), {"i": i}))
    assert store.get("k", "r4").body == {"i": 4}
    with pytest.raises(Exception, match="No stored response 'r1'"):
        store.get("k", "r1")


def test_what_cannot_be_honoured_is_a_clear_400(client: openai.OpenAI) -> None:
    cases = [
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "only function tools"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "schema"),
    ]
    for extra, words in cases:
        with pytest.raises(openai.BadRequestError, match=words):
            client.responses.create(model="fake/scripted-model", input="hi", **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("llama") / "config.toml"
    base = BASE_CONFIG.replace('[defaults]\nttt_binding = "fake"\n', "")
    path.write_text(base + LLAMA_CONFIG + LLAMA_DEFAULTS)
    with serve_in_thread(create_app(load_config(path))) as base_url:
        yield base_url + "/v1"


@pytest.mark.llamacpp
@pytest.mark.skipif(needs_llama[1].args[0], reason=needs_llama[1].kwargs["reason"])
def test_structured_output_through_text_format(llama_url: str) -> None:
    client = openai.OpenAI(base_url=llama_url, api_key=API_KEY, max_retries=0)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model="default",
        input="Is Paris in France?",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema}},
        temperature=0,
    )
    assert json.loads(response.output_text)["answer"] in ("yes", "no")
