"""More of the zoo compatibility layer on its own: the process-wide confinement of a
processor's thread (writes, network, signals), the environment processors see, the
``lollms.functions`` stand-ins and the helpers added for the zoo's processors."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lollms_server.personalities.zoo.confine import Policy, confined, network_allowed


def _in_thread(rules: Policy, work: Callable[[], Any]) -> Any:
    """``work()`` in a thread of its own held to ``rules``: its result, or what it raised."""
    out: list[Any] = []

    def target() -> None:
        with confined(rules):
            try:
                out.append(work())
            except Exception as exc:
                out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return out[0]


def assert_refused(result: Any, words: str) -> None:
    assert isinstance(result, PermissionError), result
    assert words in str(result), str(result)


# -- writes ---------------------------------------------------------------------------------
def test_a_confined_thread_writes_only_in_its_working_folder(tmp_path: Path) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    rules = Policy("zoo/writer", (home,))

    def inside() -> str:
        (home / "sub").mkdir()
        (home / "sub" / "a.txt").write_text("a")
        os.rename(home / "sub" / "a.txt", home / "b.txt")
        with open(os.devnull, "w") as null:
            null.write("nothing")
        sqlite3.connect(home / "inside.db").close()
        sqlite3.connect(":memory:").close()
        return (home / "b.txt").read_text() + (outside / "keep.txt").read_text()  # reads: fine

    assert _in_thread(rules, inside) == "akept"
    attempts: list[Callable[[], Any]] = [
        lambda: (outside / "new.txt").write_text("x"),
        lambda: open(outside / "keep.txt", "a"),  # noqa: SIM115
        lambda: os.open(outside / "fd.txt", os.O_CREAT | os.O_WRONLY),
        lambda: os.remove(outside / "keep.txt"),
        lambda: os.rename(home / "b.txt", outside / "moved.txt"),
        lambda: shutil.rmtree(outside),
        lambda: shutil.copy(home / "b.txt", outside / "copy.txt"),
        lambda: (home / "../outside/dots.txt").write_text("x"),
        lambda: sqlite3.connect(outside / "data.db"),
    ]
    for attempt in attempts:
        assert_refused(_in_thread(rules, attempt), "personality 'zoo/writer' may not write outside")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "kept"


def test_a_link_inside_the_working_folder_does_not_lead_out(tmp_path: Path) -> None:
    home, outside = tmp_path / "home", tmp_path / "outside"
    home.mkdir()
    outside.mkdir()
    (home / "link").symlink_to(outside)
    result = _in_thread(Policy("p", (home,)), lambda: (home / "link" / "x").write_text("x"))
    assert_refused(result, "may not write outside its working folder")
    assert not (outside / "x").exists()


def test_other_threads_are_not_confined(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5)

    thread = threading.Thread(target=lambda: _in_thread(Policy("p", (home,)), hold))
    thread.start()
    started.wait(5)
    try:
        (tmp_path / "server.txt").write_text("the server writes where it likes")
    finally:
        release.set()
        thread.join()
    assert (tmp_path / "server.txt").exists()


def test_threads_a_processor_starts_stay_confined(tmp_path: Path) -> None:
    from lollms_server.personalities.zoo.sandbox import guarded_module

    guarded_threading = guarded_module("threading")
    assert guarded_threading is not None and guarded_threading.Lock is threading.Lock
    home = tmp_path / "home"
    home.mkdir()
    seen: list[Any] = []

    def escape() -> None:
        try:
            (tmp_path / "from_a_thread.txt").write_text("x")
            seen.append("written")
        except PermissionError as exc:
            seen.append(exc)

    def start() -> None:
        worker = guarded_threading.Thread(target=escape)
        worker.start()
        worker.join()

    _in_thread(Policy("zoo/spawner", (home,)), start)
    assert_refused(seen[0], "personality 'zoo/spawner' may not write outside")
    assert not (tmp_path / "from_a_thread.txt").exists()


# -- network, signals ------------------------------------------------------------------------
def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def test_the_network_is_off_unless_allowed(tmp_path: Path) -> None:
    server = _listener()
    address = server.getsockname()
    try:

        def connect() -> str:
            with socket.create_connection(address, timeout=5):
                return "connected"

        off = Policy("zoo/offline", (tmp_path,))
        assert_refused(_in_thread(off, connect), "may not use the network (socket.getaddrinfo")
        assert_refused(_in_thread(off, lambda: socket.socket().connect(address)), "(socket.connect")
        assert_refused(_in_thread(off, lambda: socket.getaddrinfo("localhost", 80)), "network")
        assert "network: true" in str(_in_thread(off, connect))
        assert _in_thread(Policy("zoo/online", (tmp_path,), network=True), connect) == "connected"
    finally:
        server.close()


def test_the_server_process_cannot_be_signalled_or_forked(tmp_path: Path) -> None:
    rules = Policy("zoo/rogue", (tmp_path,))
    assert_refused(_in_thread(rules, lambda: os.kill(os.getpid(), signal.SIGTERM)), "signal")
    assert_refused(_in_thread(rules, lambda: os.kill(0, signal.SIGTERM)), "signal")
    assert_refused(_in_thread(rules, os.fork), "fork or replace")


def test_network_permission_is_read_from_the_personality_files(tmp_path: Path) -> None:
    legacy, soul, plain = tmp_path / "legacy", tmp_path / "soul", tmp_path / "plain"
    for folder in (legacy, soul, plain):
        folder.mkdir()
    (legacy / "config.yaml").write_text("name: L\nnetwork: true\n")
    (soul / "SOUL.md").write_text("---\nname: S\nnetwork: true\n---\n\nBe kind.\n")
    (plain / "config.yaml").write_text("name: P\nnetwork: 'yes please'\n")
    assert network_allowed(legacy) and network_allowed(soul)
    assert not network_allowed(plain) and not network_allowed(tmp_path / "none")


# -- the environment processors see ------------------------------------------------------------
def test_processors_do_not_see_the_server_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from lollms_server.personalities.zoo.sandbox import ProcessorEnviron, guarded_module

    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-secret")
    monkeypatch.setenv("LOLLMS_SECURITY__API_KEYS", '[{"name": "a", "key": "k"}]')
    monkeypatch.setenv("UPSTREAM", "https://bob:hunter22@models.example/v1")
    monkeypatch.setenv("ZOO_PLAIN_SETTING", "visible")
    guarded_os = guarded_module("os")
    assert guarded_os is not None
    seen = guarded_os.environ
    assert isinstance(seen, ProcessorEnviron)
    for hidden in ("OPENAI_API_KEY", "LOLLMS_SECURITY__API_KEYS", "UPSTREAM"):
        assert hidden not in seen and guarded_os.getenv(hidden) is None
    assert seen["ZOO_PLAIN_SETTING"] == guarded_os.getenv("ZOO_PLAIN_SETTING") == "visible"

    def change() -> bool:
        seen["ZOO_OWN"] = "mine"
        del seen["ZOO_PLAIN_SETTING"]
        return seen.copy().get("ZOO_OWN") == "mine" and "ZOO_PLAIN_SETTING" not in seen

    assert _in_thread(Policy("zoo/changer", (Path.cwd(),)), change) is True
    assert "ZOO_OWN" not in os.environ and os.environ["ZOO_PLAIN_SETTING"] == "visible"
    assert "ZOO_OWN" not in seen and seen["ZOO_PLAIN_SETTING"] == "visible"  # its own only


def test_processes_a_processor_starts_get_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lollms_server.personalities.zoo.sandbox import guarded_module

    monkeypatch.setenv("HF_TOKEN", "hf_server_secret")
    monkeypatch.setenv("ZOO_PLAIN_SETTING", "visible")
    guarded_subprocess, guarded_os = guarded_module("subprocess"), guarded_module("os")
    assert guarded_subprocess is not None and guarded_os is not None
    probe = "import os; print(os.environ.get('HF_TOKEN'), os.environ.get('ZOO_PLAIN_SETTING'))"
    done = guarded_subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["None", "visible"]
    with guarded_os.popen(f'{sys.executable} -c "{probe}"') as piped:
        assert piped.read().split() == ["None", "visible"]
    assert isinstance(guarded_subprocess.CalledProcessError, type)  # the rest is the module's
    assert subprocess.run is not guarded_subprocess.run


# -- lollms.functions stand-ins ----------------------------------------------------------------
def _import(name: str, *names: str) -> Any:
    from lollms_server.personalities.zoo import _shim_import

    return _shim_import(name, None, None, names, 0)


def test_lollms_functions_the_server_lacks_are_stand_ins() -> None:
    module = _import("lollms.functions.youtube.search", "search_youtube_function")
    definition = module.search_youtube_function()
    assert definition["function_name"] == "search_youtube"
    assert definition["function_parameters"] == []
    said = definition["function"](query="cats")
    assert "search_youtube (lollms.functions.youtube.search) is not available" in said
    timers = _import("lollms.functions.timers", "set_timer_with_alert_function")
    assert (
        timers.set_timer_with_alert_function(None, None)["function_name"] == "set_timer_with_alert"
    )
    # a plain name imports (a processor that never calls it runs) and names itself if called
    analyze = _import(
        "lollms.functions.analyze_code.create_project_database", "create_project_database"
    )
    with pytest.raises(NotImplementedError, match="create_project_database is not available"):
        analyze.create_project_database("project")
    for name, item in [
        ("lollms.functions.timers", "_private"),
        ("lollms.functions.generate_image", "nope"),  # a module the layer has
        ("lollms.functions_typo", "x"),
    ]:
        with pytest.raises(ImportError, match="is not provided by lollms_server's zoo"):
            _import(name, item)
    utilities = _import("lollms.utilities", "file_path_to_url")
    assert callable(utilities.file_path_to_url)


def test_example_system_prompts_and_the_web_stand_in() -> None:
    prompts = _import("lollms.functions.prompting.system_prompts", "get_system_prompt")
    best = prompts.get_system_prompt("a pirate captain", 2).split("\n\n")
    assert len(best) == 2 and best[0].startswith("### Sarcastic pirate")
    assert prompts.get_random_system_prompt().startswith("### ")
    internet = _import("lollms.internet", "internet_search")
    with pytest.raises(NotImplementedError, match="internet_search is not available"):
        internet.internet_search("cats", 3)


def test_discussion_metadata_app_urls_and_custom_personalities(tmp_path: Path) -> None:
    session = _import("lollms.client_session", "Discussion")
    discussion = session.Discussion(tmp_path / "discussion")
    assert discussion.get_metadata() == {}
    discussion.set_metadata({"sd_title": "fox", "steps": 4})
    again = session.Discussion(tmp_path / "discussion")  # kept in the discussion's folder
    assert again.get_metadata() == {"sd_title": "fox", "steps": 4}
    paths = _import("lollms.paths", "LollmsPaths").LollmsPaths(tmp_path / "home")
    assert paths.custom_personalities_path == tmp_path / "home" / "custom_personalities"
    assert paths.custom_personalities_path.is_dir()
    assert callable(_import("lollms.utilities", "app_path_to_url").app_path_to_url)


def test_next_available_image_name(tmp_path: Path) -> None:
    utilities = _import("lollms.utilities", "find_next_available_filename")
    assert utilities.find_next_available_filename(tmp_path, "img").name == "img_1.png"
    (tmp_path / "img_1.png").write_bytes(b"")
    (tmp_path / "img_3.png").write_bytes(b"")
    assert utilities.find_next_available_filename(tmp_path, "img").name == "img_2.png"
    with pytest.raises(FileNotFoundError):
        utilities.find_next_available_filename(tmp_path / "nowhere", "img")


def test_image_prompt_helpers() -> None:
    prompts = _import("lollms.functions.prompting.image_gen_prompts", "get_image_gen_prompt")
    name, text = prompts.get_random_image_gen_prompt()
    assert prompts.get_image_gen_prompt(name) == text
    assert prompts.get_image_gen_prompt("unknown") == prompts.get_image_gen_prompt("Default")
    generate_image = _import("lollms.functions.generate_image", "build_image_from_simple_prompt")
    assert callable(generate_image.build_image_from_simple_prompt)


# -- helpers ------------------------------------------------------------------------------------
def test_utilities_text_helpers() -> None:
    utilities = _import("lollms.utilities", "add_period", "safe_filename", "gc")
    assert utilities.add_period("Done") == "Done." and utilities.add_period("Why?") == "Why?"
    assert utilities.add_period("") == ""
    assert utilities.remove_text_from_string("answer !@>User: more", "!@>user") == "answer "
    assert utilities.detect_antiprompt("hi\n!@>User:") == "!@>"
    assert utilities.detect_antiprompt("hi", ["<|end|>"]) is None
    assert utilities.safe_filename("../my report?.md") == "my_report_.md"
    assert utilities.safe_filename("...") == "file"
    assert utilities.show_custom_dialog("t", "x", ["a"]) is None
    assert utilities.gc.collect() >= 0


def test_security_checks_paths_and_lets_requests_through() -> None:
    security = _import("lollms.security", "sanitize_path")
    assert security.sanitize_path("notes/today.md") == "notes/today.md"
    for bad in ("../secrets", "/etc/passwd", "a/../../b", "~/x"):
        with pytest.raises(ValueError):
            security.sanitize_path(bad)
    assert security.sanitize_path("/data/x.txt", allow_absolute_path=True) == "/data/x.txt"
    assert security.forbid_remote_access(object()) is None
    assert security.check_access(object(), "client-1") == "client-1"


def test_com_notifications_outside_a_run_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    com = _import("lollms.com", "LoLLMsCom", "NotificationType")
    caplog.set_level(logging.INFO, logger="lollms_server.personalities.zoo")
    app = com.LoLLMsCom()
    app.notify("saved", com.NotificationType.NOTIF_SUCCESS)
    assert app.YesNoMessage("Continue?") is False
    assert "saved" in caplog.text
    assert {t.name for t in com.NotificationDisplayType} >= {"TOAST", "MESSAGE_BOX"}


def test_state_handlers_get_the_arguments_they_take() -> None:
    from lollms_server.personalities.zoo.lollms.personality import _positional_room

    def old(prompt: str, full_context: str) -> None: ...
    def new(prompt: str, ctx: str, callback: Any, details: Any, client: Any) -> None: ...
    def anything(*args: Any) -> None: ...

    assert [_positional_room(f, 5) for f in (old, new, anything, print)] == [2, 5, 5, 5]
