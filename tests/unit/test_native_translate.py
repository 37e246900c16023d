"""input_data to messages: media items join the turn they belong to."""

from __future__ import annotations

import base64

from lollms_server.api.native.schemas import InputItem
from lollms_server.api.native.translate import _messages

PNG = base64.b64encode(b"\x89PNG fake").decode()


def _items(*specs: tuple[str, str, str]) -> list[InputItem]:
    return [InputItem(type=kind, role=role, data=data) for kind, role, data in specs]  # type: ignore[arg-type]


def test_an_image_before_its_question_joins_the_question() -> None:
    messages = _messages(
        _items(
            ("text", "user", "Q1"),
            ("text", "assistant", "A1"),
            ("image", "user", PNG),
            ("text", "user", "What is in it?"),
        )
    )
    assert [(m.role, m.content, len(m.media)) for m in messages] == [
        ("user", "Q1", 0),
        ("assistant", "A1", 0),
        ("user", "What is in it?", 1),
    ]


def test_an_image_after_its_text_joins_that_text() -> None:
    messages = _messages(_items(("text", "user", "Look:"), ("image", "user", PNG)))
    assert [(m.role, m.content, len(m.media)) for m in messages] == [("user", "Look:", 1)]


def test_media_that_no_text_follows_form_a_message() -> None:
    messages = _messages(
        _items(("text", "user", "Q"), ("text", "assistant", "A"), ("image", "user", PNG))
    )
    assert [(m.role, m.content, len(m.media)) for m in messages][-1] == ("user", "", 1)
