"""n > 1 on /v1/chat/completions and /v1/completions, with the openai SDK against a live
server: n generations run concurrently through the scheduler, choices indexed 0..n-1, usage
summed, streamed and not; n above the cap is a 400 naming it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread

CONFIG = (
    BASE_CONFIG
    + """
[bindings.slow]
type = "scripted"
models = ["m"]
delay_s = 0.05
max_concurrency = 4

[bindings.single]
type = "scripted"
models = ["m"]
max_concurrency = 1

[bindings.failing]
type = "scripted"
models = ["m"]
max_concurrency = 1
fail_after_chunks = 2
"""
)
ASK = [{"role": "user", "content": "one two three four"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, openai.OpenAI]]:
    path = tmp_path_factory.mktemp("choices") / "config.toml"
    path.write_text(CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)


def _binding(app: FastAPI, name: str) -> Any:
    return app.state.bindings.get(name)


def test_chat_n_choices_run_concurrently(live: tuple[FastAPI, openai.OpenAI]) -> None:
    app, client = live
    slow = _binding(app, "slow")
    slow.peak_running = 0
    before = len(slow.requests)
    reply = client.chat.completions.create(model="slow/m", messages=ASK, n=3, seed=5)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert all(c.message.content == "one two three four" for c in reply.choices)
    assert all(c.finish_reason == "stop" for c in reply.choices)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3 * 4  # every choice's tokens
    assert reply.usage.prompt_tokens == 4  # the prompt, counted once
    assert reply.usage.total_tokens == 16
    assert slow.peak_running >= 2  # not one after the other
    seeds = sorted(r.params.seed for r in slow.requests[before:])
    assert seeds == [5, 6, 7]  # one seed per choice: they may differ


def test_completion_n_choices(live: tuple[FastAPI, openai.OpenAI]) -> None:
    _, client = live
    reply = client.completions.create(model="slow/m", prompt="a b c", n=2, max_tokens=2)
    assert [(c.index, c.text, c.finish_reason) for c in reply.choices] == [
        (0, "a b ", "length"),
        (1, "a b ", "length"),
    ]
    assert reply.usage is not None and reply.usage.completion_tokens == 4


def test_more_choices_than_slots_do_not_wait_on_each_other(
    live: tuple[FastAPI, openai.OpenAI],
) -> None:
    _, client = live
    reply = client.chat.completions.create(model="single/m", messages=ASK, n=3, timeout=20)
    assert len(reply.choices) == 3
    stream = client.chat.completions.create(
        model="single/m", messages=ASK, n=3, stream=True, timeout=20
    )
    texts: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {i: "one two three four" for i in range(3)}


def test_streamed_chat_n_choices(live: tuple[FastAPI, openai.OpenAI]) -> None:
    _, client = live
    stream = client.chat.completions.create(
        model="slow/m",
        messages=ASK,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {}
    finished: dict[int, str | None] = {}
    ids, usage = set(), None
    for chunk in stream:
        ids.add(chunk.id)
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert texts == {0: "one two three four", 1: "one two three four"}
    assert finished == {0: "stop", 1: "stop"} and len(ids) == 1
    assert usage is not None and usage.completion_tokens == 8 and usage.prompt_tokens == 4


def test_streamed_completion_n_choices(live: tuple[FastAPI, openai.OpenAI]) -> None:
    _, client = live
    stream = client.completions.create(model="slow/m", prompt="x y", n=2, stream=True)
    texts: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "x y", 1: "x y"}


@pytest.mark.parametrize("stream", [False, True])
def test_n_above_the_cap_is_refused_by_name(
    live: tuple[FastAPI, openai.OpenAI], stream: bool
) -> None:
    _, client = live
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="slow/m", messages=ASK, n=9, stream=stream)
    assert info.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="slow/m", prompt="x", n=9)
    assert info.value.body["param"] == "n"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_a_failing_choice_fails_the_answer_and_frees_the_slots(
    live: tuple[FastAPI, openai.OpenAI], stream: bool
) -> None:
    app, client = live
    with pytest.raises(openai.APIError):
        reply = client.chat.completions.create(
            model="failing/m", messages=ASK, n=3, stream=stream, timeout=20
        )
        if stream:
            list(reply)  # type: ignore[arg-type]
    scheduler = app.state.scheduler
    deadline = time.monotonic() + 5  # a stream's leases go when the server closes it
    while any(s.active for s in scheduler.loaded()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(s.active == 0 for s in scheduler.loaded()), "a lease was kept"
    short = client.chat.completions.create(
        model="failing/m", messages=[ASK[0] | {"content": "ok"}], n=2
    )
    assert [c.message.content for c in short.choices] == ["ok", "ok"]


def test_a_client_leaving_a_stream_of_choices_stops_them_all(
    live: tuple[FastAPI, openai.OpenAI],
) -> None:
    app, client = live
    slow = _binding(app, "slow")
    cancelled = slow.cancelled
    long = [{"role": "user", "content": "word " * 200}]  # 200 words at 50 ms each
    stream = client.chat.completions.create(model="slow/m", messages=long, n=3, stream=True)
    seen: set[int] = set()
    for chunk in stream:
        seen.update(c.index for c in chunk.choices if c.delta.content)
        if len(seen) == 3:
            break
    stream.close()
    scheduler = app.state.scheduler
    deadline = time.monotonic() + 5
    while (slow.cancelled < cancelled + 3 or slow.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert slow.cancelled == cancelled + 3 and slow.running == 0
    assert all(s.active == 0 for s in scheduler.loaded())
