"""Secrets out of what the server shows: URLs, binding settings, log records."""

from __future__ import annotations

import logging

from lollms_server.cli import _setup_logging
from lollms_server.security.redact import SecretFilter, redact, safe_url, scrub


def test_urls_lose_their_credentials_and_query() -> None:
    assert safe_url("http://user:pw@h:1/v1?api-key=K") == "http://***@h:1/v1?***"
    assert safe_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    text = "Cannot reach 'up' (http://user:pw@127.0.0.1:1/v1?api-key=K)."
    assert scrub(text) == "Cannot reach 'up' (http://***@127.0.0.1:1/v1?***)."
    assert scrub("see https://example.com/docs, then retry") == (
        "see https://example.com/docs, then retry"
    )


def test_settings_redacted_by_name_url_and_header() -> None:
    config = {
        "api_key": "sk-1",
        "base_url": "http://u:p@h/v1",
        "n_ctx": 4096,
        "headers": {"Cookie": "session=s", "X-Trace": "t"},
        "nested": {"password": "p", "models": ["a", "b"]},
    }
    assert redact(config) == {
        "api_key": "***",
        "base_url": "http://***@h/v1",
        "n_ctx": 4096,
        "headers": {"Cookie": "***", "X-Trace": "***"},
        "nested": {"password": "***", "models": ["a", "b"]},
    }


def test_log_records_are_scrubbed() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s"',
        ("GET", "http://user:SECRET@h/v1/models", "200 OK"),
        None,
    )
    assert SecretFilter().filter(record)
    assert record.getMessage() == 'HTTP Request: GET http://***@h/v1/models "200 OK"'


def test_cli_logging_filters_every_handler_and_quiets_http_clients() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        _setup_logging("info")
        assert root.handlers
        assert all(any(isinstance(f, SecretFilter) for f in h.filters) for h in root.handlers)
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(logging.NOTSET)
