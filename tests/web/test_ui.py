"""The web page at ``/``, driven in Debian's headless Chromium through Playwright.

One server (scripted bindings, the fixture zoo with logos and broken folders, the example
functions) and one browser per module; each test gets a fresh browser context (empty session
and local storage). Optional engines get servers of their own, started only by their tests:
a tiny diffusers pipeline for the media studio, the embedded SmolLM2 for a real chat.

Without playwright or Chromium the browser tests skip, saying which is missing. Screenshots
go to a temporary folder, and also to ``$LOLLMS_UI_SCREENSHOTS`` when it names one.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from lollms_server.api.web import CONTENT_SECURITY_POLICY, WEB_ROOT
from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH
from tests.diffusers_support import build_tiny_sd, needs_diffusers
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, MODEL_NAME, needs_llama
from tests.zoo_fixture import write_zoo

CHROMIUM = os.environ.get("LOLLMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
REPLY = (
    "Paris is the capital of **France**. Try `print('hi')`:\n\n"
    "- the Louvre\n- the Eiffel Tower\n\n"
    "```python\ndef greet(name):\n    return f'Bonjour {name}'  # polite\n```\n"
)


def _browser_missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "needs playwright for Python (pip install playwright; make install-dev)"
    if not Path(CHROMIUM).is_file():
        return f"needs Chromium at {CHROMIUM} (make browser installs Debian's chromium)"
    return None


MISSING = _browser_missing()
needs_browser = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


def _config(root: Path, extra: str = "") -> Path:
    zoo = write_zoo(root / "zoo")
    path = root / "config.toml"
    path.write_text(
        f"""
[security]
[[security.api_keys]]
name = "tests"
key = "{API_KEY}"

[paths]
personalities = ["{zoo}", "{ROOT / "zoos" / "personalities"}"]
functions = ["{ROOT / "zoos" / "functions"}"]

[resources]
system_memory = "2GiB"

[bindings.demo]
type = "scripted"
models = ["scripted-model"]
reply = {json.dumps(REPLY)}
delay_s = 0.01
memory_bytes = {{ scripted-model = 734003200 }}

[bindings.echo]
type = "scripted"
models = ["echo-model"]

[bindings.slow]
type = "scripted"
models = ["slow-model"]
reply = {json.dumps("word " * 400)}
delay_s = 0.05
"""
        + extra
    )
    return path


def _server(path: Path) -> Iterator[tuple[FastAPI, str]]:
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("web")
    yield from _server(_config(root, '\n[defaults]\nttt_binding = "demo"\n'))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """Save a screenshot of a page (full page) under a name; returns its path."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("LOLLMS_UI_SCREENSHOTS")

    def shot(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(extra) / path.name)
        return path

    return shot


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if MISSING:
        pytest.skip(MISSING)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """What a page logged: console errors and uncaught exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860}, color_scheme="light")
    ctx.set_default_timeout(15000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    tab = context.new_page()
    console = Console()
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    tab.console = console
    yield tab
    # Whatever a test did: no script error, nothing the Content-Security-Policy refused.
    refused = [e for e in console.errors if "uncaught" in e or "Content Security Policy" in e]
    assert refused == []


def sign_in(page: Any, url: str, key: str = API_KEY) -> None:
    page.goto(url + "/")
    page.fill("#signin-key", key)
    page.click("#signin-submit")


def signed_in(page: Any, url: str) -> None:
    sign_in(page, url)
    page.wait_for_selector("#dash-stats .stat")


def binding(app: FastAPI, name: str) -> Any:
    return app.state.bindings.get(name)


def open_chat(page: Any, model: str) -> None:
    page.click("nav a[data-view=chat]")
    page.click("#chat-new")
    page.click("#chat-settings summary")
    page.select_option("#chat-model", model)
    page.click("#chat-settings summary")


def send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- the page and its headers (no browser needed) --------------------------------------------
def test_page_and_assets_need_no_key_and_carry_strict_headers(
    server: tuple[FastAPI, str],
) -> None:
    url = server[1]
    with httpx.Client(base_url=url) as client:
        page = client.get("/")
        script = client.get("/ui/js/main.js")
        style = client.get("/ui/app.css")
        api = client.get("/api/v1/status")
        again = client.get("/ui/app.css", headers={"If-None-Match": style.headers["etag"]})
    assert page.status_code == 200 and 'src="/ui/js/main.js"' in page.text
    for response in (page, script, style):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "set-cookie" not in response.headers
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert again.status_code == 304
    assert api.status_code == 401  # the page is open; the API it calls is not
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "path",
    [
        "/ui/../api/web.py",
        "/ui/%2e%2e/api/web.py",
        "/ui/..%2f..%2fapp.py",
        "/ui/js/../../api/web.py",
        "/ui//etc/passwd",
        "/ui/%2fetc%2fhostname.css",
        "/ui/js",
        "/ui/missing.js",
        "/ui/index.py",
    ],
)
def test_no_file_outside_the_web_folder(server: tuple[FastAPI, str], path: str) -> None:
    with httpx.Client(base_url=server[1]) as client:
        response = client.get(path)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found"


def test_page_weight_under_300_kb_gzipped() -> None:
    files = [p for p in WEB_ROOT.rglob("*") if p.is_file()]
    gzipped = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    assert {p.suffix for p in files} <= {".html", ".css", ".js", ".svg", ".png"}
    assert gzipped < 300 * 1024, gzipped


def test_no_inline_code_in_the_page() -> None:
    """What the CSP would block anyway: no inline script, style or handler attribute."""
    html = (WEB_ROOT / "index.html").read_text()
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert " onclick=" not in html and " onload=" not in html
    for script in (WEB_ROOT / "js").glob("*.js"):
        text = script.read_text()
        assert "innerHTML" not in text and "eval(" not in text and "new Function" not in text
        assert "insertAdjacentHTML" not in text and "outerHTML" not in text


def test_models_admin_routes(server: tuple[FastAPI, str]) -> None:
    app, url = server
    with httpx.Client(base_url=url, headers=AUTH, timeout=30) as client:
        anonymous = httpx.post(url + "/api/v1/models/load", json={"model": "echo/echo-model"})
        loaded = client.post("/api/v1/models/load", json={"model": "echo/echo-model"})
        pinned = client.post("/api/v1/models/pin", json={"model": "echo", "pinned": True})
        unloaded = client.post("/api/v1/models/unload", json={"model": "echo/echo-model"})
        again = client.post("/api/v1/models/unload", json={"model": "echo/echo-model"})
        missing = client.post("/api/v1/models/load", json={"model": "echo/nope"})
    assert anonymous.status_code == 401
    assert loaded.json()["status"] == "loaded" and not loaded.json()["pinned"]
    assert pinned.json()["pinned"] is True
    assert unloaded.json()["status"] == "unloaded" and not unloaded.json()["pinned"]
    assert again.status_code == 409 and "is not loaded" in again.json()["error"]["message"]
    assert missing.status_code == 404
    assert ("unload", "echo-model") in binding(app, "echo").events


def test_unloading_a_busy_model_is_refused(server: tuple[FastAPI, str]) -> None:
    body = {"prompt": "x", "binding_name": "slow", "stream": True}
    with httpx.Client(base_url=server[1], headers=AUTH, timeout=30) as client:
        with client.stream("POST", "/api/v1/generate", json=body) as running:
            lines = running.iter_lines()  # kept: a dropped iterator closes the stream
            assert next(lines).startswith("data: ")  # the generation has started
            busy = client.post("/api/v1/models/unload", json={"model": "slow/slow-model"})
        state = server[0].state.scheduler._states[("slow", "slow-model")]
        assert wait_for(lambda: state.active == 0)
        done = client.post("/api/v1/models/unload", json={"model": "slow/slow-model"})
    assert busy.status_code == 409, busy.text
    assert busy.json()["error"] == {
        "type": "model_busy",
        "message": "Model 'slow/slow-model' has 1 generation(s) running.",
        "param": "model",
        "code": "model_busy",
    }
    assert done.status_code == 200 and done.json()["status"] == "unloaded"


# -- in the browser ---------------------------------------------------------------------------
@needs_browser
def test_page_loads_without_key_and_without_console_errors(
    server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    response = page.goto(server[1] + "/")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    page.wait_for_selector("#signin-key")
    assert page.is_visible("#signin-form") and not page.is_visible("#nav")
    paint = page.evaluate(
        "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"
    )
    print(f"first contentful paint: {paint} ms")
    assert paint is not None and paint < 3000
    assert page.console.errors == []
    assert page.evaluate("() => sessionStorage.length") == 0
    shots(page, "signin")


@needs_browser
def test_wrong_key_shows_a_clear_message(server: tuple[FastAPI, str], page: Any) -> None:
    sign_in(page, server[1], key="not-the-key")
    page.wait_for_selector("#signin-error:has-text('refused')")
    message = page.inner_text("#signin-error")
    assert "This API key was refused by the server (401)" in message
    assert page.evaluate("() => sessionStorage.length") == 0
    assert not page.is_visible("#nav")


@needs_browser
def test_sign_in_keeps_the_key_in_session_storage_only(
    server: tuple[FastAPI, str], page: Any, context: Any
) -> None:
    signed_in(page, server[1])
    assert page.evaluate("() => sessionStorage.getItem('lollms_server.api_key')") == API_KEY
    assert API_KEY not in page.url
    assert context.cookies() == []
    assert page.evaluate("() => JSON.stringify(localStorage)").find(API_KEY) == -1
    page.click("#sign-out")
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.is_visible("#signin-form")


@needs_browser
def test_chat_streams_a_rendered_answer(
    server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    signed_in(page, server[1])
    open_chat(page, "demo/scripted-model")
    send(page, "What is the capital of France?")
    page.wait_for_selector(".msg-assistant[aria-busy=true]")  # streaming in
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content strong")
    answer = page.locator(".msg-assistant .content")
    assert answer.locator("strong").inner_text() == "France"
    assert answer.locator("li").count() == 2
    assert "def" in answer.locator(".code-block .tok-kw").all_inner_texts()
    assert "Paris is the capital" in answer.inner_text()
    assert page.inner_text("#chat-title") == "What is the capital of France?"
    shots(page, "chat")


@needs_browser
def test_model_text_is_never_html(server: tuple[FastAPI, str], page: Any) -> None:
    app, url = server
    signed_in(page, url)
    open_chat(page, "echo/echo-model")
    hostile = '<img src=x onerror="window.pwned=1"> [x](javascript:alert(1)) <b>bold</b>'
    send(page, hostile)
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content")
    answer = page.locator(".msg-assistant .content")
    assert answer.locator("img, b").count() == 0
    assert answer.locator("a").count() == 0  # a javascript: link stays text
    assert '<img src=x onerror="window.pwned=1">' in answer.inner_text()
    assert page.evaluate("() => window.pwned === undefined")


@needs_browser
def test_stop_cancels_the_generation_on_the_server(server: tuple[FastAPI, str], page: Any) -> None:
    app, url = server
    slow = binding(app, "slow")
    cancelled = slow.cancelled
    signed_in(page, url)
    open_chat(page, "slow/slow-model")
    send(page, "Go on and on")
    page.wait_for_selector(".msg-assistant .content p")  # the first words arrived
    with httpx.Client(base_url=url, headers=AUTH) as client:
        assert client.get("/api/v1/status").json()["active_generations"] == 1
        page.click("#chat-stop")
        page.wait_for_selector(".msg-assistant .note:has-text('Stopped')")
        assert wait_for(lambda: client.get("/api/v1/status").json()["active_generations"] == 0)
    assert wait_for(lambda: slow.cancelled == cancelled + 1)
    assert page.is_enabled("#chat-send") and not page.is_enabled("#chat-stop")


@needs_browser
def test_personality_changes_what_the_binding_receives(
    server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    app, url = server
    signed_in(page, url)
    open_chat(page, "echo/echo-model")
    page.click("#chat-settings summary")
    page.fill("#chat-persona-search", "haiku")
    page.click("[data-personality='examples/haiku_poet']")
    page.wait_for_selector("#chat-summary:has-text('examples/haiku_poet')")
    page.fill("#chat-persona-search", "interview")  # one with a logo
    page.wait_for_selector("[data-personality='legacy_config_yaml/helpers/interviewer'] img")
    page.evaluate("() => { document.getElementById('chat-settings').scrollTop = 0; }")
    wait_for(
        lambda: page.evaluate(
            "() => [...document.querySelectorAll('.persona-item img')]"
            ".some(i => i.src.startsWith('blob:') && i.naturalWidth > 0)"
        )
    )
    shots(page, "chat-personalities")
    page.click("#chat-settings summary")
    send(page, "Tell me about rivers")
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content")
    request = binding(app, "echo").requests[-1]
    system = request.messages[0]
    assert system.role == "system" and "Haiku Poet" in system.content
    assert request.messages[-1].content == "Tell me about rivers"


@needs_browser
def test_dashboard_shows_the_loaded_model_and_unloads_it(
    server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    app, url = server
    signed_in(page, url)
    open_chat(page, "demo/scripted-model")
    send(page, "Hello")
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content strong")
    page.click("nav a[data-view=dashboard]")
    row = page.locator("tr[data-model='demo/scripted-model']")
    row.wait_for()
    assert "loaded" in row.inner_text()
    page.wait_for_selector("#dash-problems li:has-text('aliased')")  # a broken zoo folder
    row.locator("button[data-action=pin]").click()
    page.wait_for_selector("tr[data-model='demo/scripted-model'] td:has-text('pinned')")
    page.evaluate("() => { document.getElementById('toast').hidden = true; }")
    shots(page, "dashboard")
    page.locator("tr[data-model='demo/scripted-model'] button[data-action=unload]").click()
    page.wait_for_selector("#toast:has-text('Unloaded demo/scripted-model')")
    state = app.state.scheduler._states[("demo", "scripted-model")]
    assert state.status == "unloaded" and not state.pinned
    assert ("unload", "scripted-model") in binding(app, "demo").events
    row.wait_for(state="detached")


@needs_browser
def test_conversations_are_kept_renamed_and_exported(
    server: tuple[FastAPI, str], page: Any
) -> None:
    signed_in(page, server[1])
    open_chat(page, "echo/echo-model")
    send(page, "Remember me")
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content")
    page.once("dialog", lambda dialog: dialog.accept("Kept chat"))
    page.click("#chat-rename")
    page.wait_for_selector("#chat-title:has-text('Kept chat')")
    page.reload()
    page.click("nav a[data-view=chat]")
    page.wait_for_selector("#chat-list .conv-title:has-text('Kept chat')")
    page.click("#chat-list button:has-text('Kept chat')")
    with page.expect_download() as exported:
        page.click("#chat-export-json")
    data = json.loads(Path(exported.value.path()).read_text())
    assert data["title"] == "Kept chat"
    assert [m["content"] for m in data["messages"]] == ["Remember me", "Remember me"]
    with page.expect_download() as markdown:
        page.click("#chat-export-md")
    text = Path(markdown.value.path()).read_text()
    assert text.startswith("# Kept chat") and "## Assistant" in text


@needs_browser
def test_browsers_show_models_personalities_functions_and_bindings(
    server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    signed_in(page, server[1])
    page.click("nav a[data-view=browse]")
    page.wait_for_selector("#browse-panel th:has-text('slow/slow-model')")
    page.click("#tab-functions")
    page.click("#browse-panel summary:has-text('calculate')")
    assert '"expression"' in page.inner_text("#browse-panel .json")
    page.click("#tab-bindings")
    title = page.get_by_text("scripted", exact=True)
    scripted = page.locator("details.binding").filter(has=title)
    scripted.locator("summary").click()
    scripted.get_by_text("delay_s", exact=True).wait_for()
    page.click("#tab-personalities")
    page.click(".persona-row:has-text('Interviewer')")
    page.wait_for_selector(".persona-detail h2:has-text('Interviewer')")
    page.wait_for_selector("#browse-panel li:has-text('just_a_list')")
    shots(page, "browse")


@needs_browser
def test_phone_width_dark_theme_and_keyboard(
    server: tuple[FastAPI, str], browser: Any, shots: Callable[[Any, str], Path]
) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    try:
        page = ctx.new_page()
        signed_in(page, server[1])
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(18, 21, 27)"  # the dark theme, from prefers-color-scheme
        page.click("#theme-toggle")  # system -> light
        assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
        page.click("#theme-toggle")  # light -> dark
        page.click("nav a[data-view=chat]")
        send(page, "Hello from a phone")
        page.wait_for_selector(".msg-assistant:not([aria-busy]) .content")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert overflow <= 0
        shots(page, "chat-phone-dark")
        # Keyboard: from one section link, Tab then Enter opens the next section.
        page.focus("nav a[data-view=media]")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_selector("#view-browse:not([hidden])")
        first = page.evaluate("() => document.body.firstElementChild.textContent")
        assert first == "Skip to content"
    finally:
        ctx.close()


# -- optional engines: servers of their own -------------------------------------------------
@pytest.fixture(scope="module")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("web_media")
    sd = build_tiny_sd(root)
    extra = f"""
[defaults]
ttt_binding = "demo"
tti_binding = "media"
tti_model = "sd"

[bindings.media]
type = "diffusers"
models = {{ sd = "{sd}" }}
"""
    yield from _server(_config(root, extra))


@needs_browser
@needs_diffusers[0]
@needs_diffusers[1]
def test_media_studio_renders_a_generated_image(
    media_server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    signed_in(page, media_server[1])
    page.click("nav a[data-view=media]")
    page.wait_for_selector("#media-model option[value='media/sd']", state="attached")
    page.fill("#media-prompt", "a lighthouse at dusk")
    page.fill("#media-width", "64")
    page.fill("#media-height", "64")
    page.fill("#media-steps", "2")
    page.fill("#media-seed", "7")
    page.click("#media-generate")
    image = page.locator(".result[data-kind=image] img")
    image.wait_for(timeout=120000)
    assert image.get_attribute("src").startswith("blob:")
    assert wait_for(lambda: image.evaluate("i => i.complete && i.naturalWidth") == 64)
    assert "Done: 1 result" in page.inner_text("#media-status")
    link = page.locator(".result a[download]")
    assert link.get_attribute("download").endswith(".png")
    shots(page, "media")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("web_llama")
    defaults = f'\n[defaults]\nttt_binding = "llm"\nttt_model = "{MODEL_NAME}"\n'
    yield from _server(_config(root, defaults + LLAMA_CONFIG))


@needs_browser
@needs_llama[0]
@needs_llama[1]
def test_smollm2_answer_streams_in(
    llama_server: tuple[FastAPI, str], page: Any, shots: Callable[[Any, str], Path]
) -> None:
    signed_in(page, llama_server[1])
    open_chat(page, f"llm/{MODEL_NAME}")
    page.click("#chat-settings summary")
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "40")
    page.press("#chat-max-tokens", "Tab")
    page.click("#chat-settings summary")
    send(page, "What is the capital of France?")
    page.wait_for_selector(".msg-assistant:not([aria-busy]) .content", timeout=120000)
    answer = page.inner_text(".msg-assistant .content")
    assert "Paris" in answer, answer
    assert page.locator(".msg-assistant .note.error").count() == 0
    shots(page, "chat-smollm2")
