"""Zoo-style processors (``class Processor(APScript)``) written the way the lollms zoo writes
them, run through ``/api/v1/generate`` on the scripted binding: the client's limits bound
their generations, their answers and failures reach the client and the log, their prompts
fit the model's context, the compatibility layer gives them what they import, and the
sandbox keeps them from changing the server's machine."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG, binding_of

BOUNDED = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        self.step_start("Drafting")
        draft = self.fast_gen(previous_discussion_text, 500, temperature=0.9, top_p=0.99,
                              top_k=200)
        self.step_end("Drafting")
        short = self.generate("!@>user:\\nbe brief", 2, temperature=0.05)
        verdict = self.yes_no("Is it a question?", context=prompt)
        return f"{draft.strip()}|{short.strip()}|{verdict}"
"""
OWN_BOUNDED = """
async def run_workflow(prompt, params, context):
    await context.step_start("Writing")
    long = await context.generate("write", max_tokens=500, temperature=1.5)
    short = await context.generate("again", max_tokens=1, use_personality=False)
    return f"{long}|{short}"
"""
RETURNS_AFTER_STEPS = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, context_details, client, callback):
        self.callback = callback
        self.step_start("Thinking")
        answer = self.fast_gen(context_details.prompt, callback=self.sink)
        self.step_end("Thinking")
        return "Answer: " + answer.strip()
"""
MISSING_NAME = """
from lollms.personality import APScript
from lollms.nowhere import Something


class Processor(APScript):
    pass
"""
SECRET_INIT = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        raise ConnectionError("cannot reach https://bob:hunter22@models.example/v1")
"""
LONG_PROMPT = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        document = " ".join(f"fact{i}" for i in range(400))
        full = (f"!@>system:\\nYou answer from the document.\\n!@>documentation:\\n{document}\\n"
                + previous_discussion_text)
        self.set_message_content(self.fast_gen(full, 8))
"""


def zoo_personality(root: Path, name: str, processor: str, config: str = "") -> None:
    """A zoo-layout personality folder with ``scripts/processor.py``."""
    folder = root / "zoo" / name
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "processor.py").write_text(processor)
    (folder / "config.yaml").write_text(
        f"name: {name}\npersonality_conditioning: Be helpful.\n" + textwrap.dedent(config)
    )


def own_personality(root: Path, name: str, script: str, config: str = "") -> None:
    """A personality with lollms_server's own ``workflow.py``."""
    folder = root / "own" / name
    folder.mkdir(parents=True)
    (folder / "workflow.py").write_text(script)
    (folder / "config.yaml").write_text(
        f"name: {name}\npersonality_conditioning: Be helpful.\nscript: workflow.py\n"
        + textwrap.dedent(config)
    )


HOT = """
model_temperature: 0.9
model_n_predicts: 700
model_top_p: 0.95
"""


@pytest.fixture
def personalities(tmp_path: Path) -> Path:
    root = tmp_path / "personalities"
    zoo_personality(root, "bounded", BOUNDED, HOT)
    own_personality(root, "own_bounded", OWN_BOUNDED, HOT)
    zoo_personality(root, "returns_after_steps", RETURNS_AFTER_STEPS)
    zoo_personality(root, "missing_name", MISSING_NAME)
    zoo_personality(root, "secret_init", SECRET_INIT)
    zoo_personality(root, "long_prompt", LONG_PROMPT)
    zoo_personality(root, "installs", INSTALLS)
    zoo_personality(root, "imports_refused", IMPORTS_REFUSED)
    zoo_personality(root, "confined", CONFINED)
    zoo_personality(root, "lenient", LENIENT)
    zoo_personality(root, "online", CONFINED, "network: true\n")
    return root


def server_config(personalities: Path, extra: str = "") -> str:
    return (
        textwrap.dedent(BASE_CONFIG)
        + textwrap.dedent(f"""
    [paths]
    personalities = "{personalities}"

    [bindings.words]
    type = "scripted"
    reply = "one two three four five six seven eight"

    [bindings.small]
    type = "scripted"
    context_size = 120
    """)
        + textwrap.dedent(extra)
    )


@contextlib.asynccontextmanager
async def serving(config: str, folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that ``config`` (written in ``folder``) describes, started."""
    path = folder / "config.toml"
    path.write_text(config)
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH
        ) as c,
    ):
        yield c


@pytest.fixture
async def client(tmp_path: Path, personalities: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(server_config(personalities), tmp_path) as c:
        yield c


async def generate(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/generate", json=body)


# -- the client's limits bound every generation of a script ----------------------------------
async def test_request_limits_bound_every_generation_of_a_zoo_processor(
    client: httpx.AsyncClient,
) -> None:
    limits = {"max_tokens": 4, "temperature": 0.2, "top_p": 0.5, "top_k": 20}
    response = await generate(
        client, prompt="Is it?", personality="bounded", binding_name="words", parameters=limits
    )
    assert response.status_code == 200, response.text
    asked = binding_of(client, "words").requests[-3:]
    # The processor asked for 500 tokens at 0.9 (its personality for 700 at 0.9): the client's
    # limits win; a script may still go lower (2 tokens, temperature 0.05, yes_no's 0).
    assert [r.params.max_tokens for r in asked] == [4, 2, 4]
    assert [r.params.temperature for r in asked] == [0.2, 0.05, 0.0]
    assert all(r.params.top_p == 0.5 and r.params.top_k == 20 for r in asked)
    body = response.json()
    assert body["usage"]["completion_tokens"] == 4 + 2 + 4  # the whole workflow
    assert body["output"][0]["data"] == "one two three four|one two|False"


async def test_request_limits_bound_every_generation_of_an_own_script(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(
        client,
        prompt="x",
        personality="own_bounded",
        binding_name="words",
        parameters={"max_tokens": 3, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    first, second = binding_of(client, "words").requests[-2:]
    assert (first.params.max_tokens, first.params.temperature) == (3, 0)
    assert (second.params.max_tokens, second.params.temperature) == (1, 0)
    assert response.json()["usage"]["completion_tokens"] == 4


async def test_without_limits_the_personality_defaults_still_apply(
    client: httpx.AsyncClient,
) -> None:
    response = await generate(client, prompt="Is it?", personality="bounded", binding_name="words")
    assert response.status_code == 200, response.text
    draft = binding_of(client, "words").requests[-3]
    assert (draft.params.max_tokens, draft.params.temperature) == (500, 0.9)


# -- a script's answer is never dropped --------------------------------------------------------
async def test_returned_text_after_steps_is_the_answer(client: httpx.AsyncClient) -> None:
    plain = (await generate(client, prompt="hello there", personality="returns_after_steps")).json()
    assert plain["output"][0]["data"] == "Answer: hello there"
    assert [s["kind"] for s in plain["steps"]] == ["step_start", "step_end"]
    async with client.stream(
        "POST",
        "/api/v1/generate",
        json={"prompt": "hi", "personality": "returns_after_steps", "stream": True},
    ) as streamed:
        events = [json.loads(x[6:]) async for x in streamed.aiter_lines() if x.startswith("data: ")]
    assert [e["content"] for e in events if e["type"] == "chunk"] == ["Answer: hi"]


# -- failures are logged with their reason ----------------------------------------------------
async def test_load_and_construction_failures_are_logged_with_their_reason(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lollms_server.personalities")
    missing = await generate(client, prompt="x", personality="missing_name")
    assert missing.status_code == 503
    assert "lollms.nowhere" in missing.json()["error"]["message"]
    broken = await generate(client, prompt="x", personality="secret_init")
    assert broken.status_code == 500
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "'lollms.nowhere' is not provided" in logged
    assert "processor.py line 3" in logged  # where in the script
    assert "secret_init" in logged and "ConnectionError: cannot reach" in logged
    assert "hunter22" not in logged and "hunter22" not in broken.text


# -- prompts fit the model's context -----------------------------------------------------------
async def test_a_prompt_beyond_the_context_is_cut_to_fit(client: httpx.AsyncClient) -> None:
    history = [
        {"type": "text", "role": role, "data": f"turn {i} " + "word " * 20}
        for i, role in enumerate(["user", "assistant"] * 3)
    ]
    history.append({"type": "text", "role": "user", "data": "What is fact399?"})
    response = await generate(
        client, input_data=history, personality="long_prompt", binding_name="small"
    )
    assert response.status_code == 200, response.text
    sent = binding_of(client, "small").requests[-1]
    words = sum(len(m.content.split()) for m in sent.messages)
    assert words + 8 <= 120  # the scripted model counts one token per word: room for 8
    assert sent.messages[0].content.startswith("You answer from the document.")
    assert "fact399" in sent.messages[0].content  # a document keeps its end
    assert sent.messages[-1].content == "What is fact399?"  # the question stays
    assert all("turn 0" not in m.content for m in sent.messages)  # oldest turns went first


# -- the compatibility layer: what zoo processors import ------------------------------------
PAINT_BINDING = '''
from typing import ClassVar

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.events import Finished, MediaOutput
from lollms_server.bindings.types import ModelInfo

PNG = b"\\x89PNG\\r\\n\\x1a\\n painted"


class PaintBinding(Binding[BindingConfig]):
    """Paints a fixed PNG; keeps the requests it got."""

    name: ClassVar[str] = "paint"
    modalities: ClassVar[frozenset[str]] = frozenset({"tti"})
    requests: ClassVar[list] = []

    async def list_models(self):
        return [ModelInfo(name="brush", modalities=["tti"])]

    async def load(self, model):
        pass

    async def unload(self, model):
        pass

    async def generate(self, request):
        type(self).requests.append(request)
        yield MediaOutput(PNG, "image/png", "image", {"seed": request.params.seed})
        yield Finished("stop")
'''
UTILITIES = """
import json
from pathlib import Path

from lollms.personality import APScript
from lollms.utilities import (
    File_Path_Generator, PackageManager, PromptReshaper, convert_language_name,
    discussion_path_to_url, find_first_available_file_index, git_pull, output_file_path_to_url,
    show_yes_no_dialog,
)


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        folder = client.discussion.discussion_folder
        index = find_first_available_file_index(folder, "note_", ".txt")
        note = Path(folder) / f"note_{index}.txt"
        note.write_text("written by the processor")
        fresh = File_Path_Generator.generate_unique_file_path(folder, "note", "txt")
        Path(folder, "note_1.txt").write_text("taken")
        fresher = File_Path_Generator.generate_unique_file_path(folder, "note", "txt")
        report = self.personality.lollms_paths.personal_outputs_path / "report.md"
        report.write_text("# report")
        try:
            git_pull(self.personality.personality_package_path)
            pulled = "pulled"
        except PermissionError as exc:
            pulled = str(exc)
        model = self.personality.model
        reshaped = PromptReshaper("Q: {{question}} H: {{history}}").build(
            {"question": "why?", "history": "one two three four five six"},
            model.tokenize, model.detokenize, 6, ["history"])
        self.set_message_content(json.dumps({
            "note": discussion_path_to_url(note),
            "report": output_file_path_to_url(report),
            "index": index,
            "fresh": [Path(fresh).name, Path(fresher).name],
            "pulled": pulled,
            "reshaped": reshaped,
            "json_installed": PackageManager.check_package_installed("json"),
            "missing_installed": PackageManager.check_package_installed("no_such_module_x"),
            "language": convert_language_name("French"),
            "dialog": show_yes_no_dialog("Install?", "May I?"),
        }))
"""
MODEL_AND_TYPES = """
import json

from lollms.config import ASCIIColors
from lollms.databases.discussions_database import Discussion
from lollms.paths import LollmsPaths
from lollms.personality import APScript, LoLLMsAction, craft_a_tag_to_specific_text
from lollms.types import SUMMARY_MODE, GenerationPresets


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)
        self.ctx = personality.model.config["ctx_size"]

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        ASCIIColors.info("model and types")
        model = self.personality.model
        tokens = model.tokenize("alpha beta gamma")
        self.personality.InfoMessage("informed")
        action = LoLLMsAction("add", {"a": 2, "b": 3}, lambda a, b: a + b, "adds")
        joined = "".join([context_details.documentation, context_details.user_description,
                          context_details.positive_boost, context_details.negative_boost])
        summary = self.summarize_chunks(["first chunk", "second chunk"], "summarize",
                                        summary_mode=SUMMARY_MODE.SUMMARY_MODE_HIERARCHICAL)
        zoo = self.personality.lollms_paths.personalities_zoo_path
        self.set_message_content(json.dumps({
            "ctx": self.ctx,
            "ctx_details": context_details.ctx_size,
            "tokens": len(tokens),
            "round_trip": model.detokenize(tokens),
            "generated": model.generate("!@>user:\\nsay it", 2,
                                        **GenerationPresets.deterministic_preset()),
            "action": action.run(),
            "joined": joined,
            "summary": summary,
            "discussion": isinstance(client.discussion, Discussion),
            "messages": [m.content for m in client.discussion.get_messages()],
            "paths": isinstance(self.personality.lollms_paths, LollmsPaths),
            "tag": craft_a_tag_to_specific_text("a b c", "b", "<see>"),
            "block": self.build_a_document_block("Doc <1>", "https://example.org", "body & more"),
            "listed": self.build_a_document_block("prompts", "", ["a<b", "c"]),
            "zoo": sorted(p.name for p in zoo.iterdir()),
            "answered": self.answer(context_details, "!@>extra:\\nan extra entry", send_full=False),
        }))
"""
FUNCTIONS = """
from lollms.functions.generate_image import build_image, build_image_function
from lollms.functions.select_image_file import select_image_file_function
from lollms.functions.take_a_photo import take_a_photo_function
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        self.callback = callback
        functions = [
            build_image_function(self, client),
            take_a_photo_function(self, client),
            select_image_file_function(self, client),
        ]
        out = self.interact_with_function_call(context_details, functions,
                                               prompt_after_execution=False)
        direct = build_image("a red fox", "", 512, 512, self, client, return_format="url")
        self.set_message_content(out + "\\n" + direct)
"""
TTI_SERVICES = """
from lollms.services.tti.dalle.lollms_dalle import LollmsDalle
from lollms.services.tti.sd.lollms_sd import LollmsSD
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)
        self.sd = LollmsSD(personality.app, "Artbot")

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        file, infos = self.sd.paint(prompt, "blurry", seed=42, width=256, height=320)
        other, _ = LollmsDalle(self.personality.app, "key").paint("a boat")
        app_tti, _ = self.personality.app.tti.paint("a tree")
        self.set_message_content(" | ".join([file, other, app_tti, str(infos["seed"])]))
"""
OWN_PAINTER = """
async def run_workflow(prompt, params, context):
    images = await context.generate_media("a fox", width=64, height=96, seed=3)
    return images
"""
CALLS = "\n".join(  # what the model answers: two function calls, as lollms asks
    [
        "```function",
        json.dumps(
            {
                "function_name": "build_image",
                "function_parameters": {"prompt": "a cat", "width": 64, "height": 64},
            }
        ),
        "```",
        "```function",
        '{"function_name": "take_a_photo", "function_parameters": {}}',
        "```",
    ]
)
OLD_STYLE_CALLS = """
import json

from lollms.functions.calculator import calculate, calculate_function
from lollms.functions.roll_a_dice import roll_a_dice_function
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        # older lollms: a prompt text instead of the context details
        prompt = self.build_prompt_from_context_details(context_details)
        out = self.interact_with_function_call(
            prompt, [roll_a_dice_function(), calculate_function(self, client)],
            prompt_after_execution=False)
        self.set_message_content(json.dumps({
            "results": out.split("```")[-1].strip().splitlines(),
            "members": [p.name for p in self.personality.app.mounted_personalities],
            "refused": calculate("__import__('os').getcwd()"),
            "bounded": calculate("9 ** 9 ** 9"),
        }))
"""
DICE_CALLS = "\n".join(  # the model asks for a computation and a die
    [
        "```function",
        '{"function_name": "calculate", "function_parameters": {"expression": "6 * 7"}}',
        "```",
        "```function",
        '{"function_name": "roll_a_dice", "function_parameters": {}}',
        "```",
    ]
)
MISSING = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        errors = []
        for attempt in (
            lambda: self.personality.no_such_thing,
            lambda: self.no_such_helper(),
            lambda: self.personality.app.tts.tts_audio("hi"),
            lambda: __import__("lollms.utilities", fromlist=["git_pull"]).nope,
        ):
            try:
                attempt()
            except AttributeError as exc:
                errors.append(str(exc))
        try:
            from lollms.functions.no_such_module import thing  # imports: a stand-in
            thing()
        except NotImplementedError as exc:
            errors.append(str(exc))
        self.set_message_content("\\n".join(errors))
"""

CODER_REPLY = "```python\ndef double(x):\n    return 2 * x\n```"
DOCUMENT_TASKS = """
import json
from pathlib import Path

from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        long_text = " ".join(f"word{i}" for i in range(700))
        module, code = self.build_and_execute_python_code(
            "numbers", "double a number", "def double(x):", "import math")
        printed = self.execute_python("print(6 * 7)\\nopen('made.txt', 'w').write('x')",
                                      code_file_name="six.py")
        outside = self.execute_python("open('/tmp/lollms-test-outside.txt', 'w')")
        failed = self.execute_python("raise ValueError('bad value')")
        self.save_text("saved text", "saved.txt")
        self.play_mp3("assets/sound.mp3")
        self.set_message_content(json.dumps({
            "double": module.double(21),
            "imports": code.startswith("import math"),
            "printed": printed,
            "made": Path(self.personality.lollms_paths.personal_outputs_path, "made.txt").exists(),
            "outside": outside,
            "failed": failed,
            "saved": Path("saved.txt").read_text(),
            "short": self.summarize_text("a short text"),
            "summary": self.summerize_text(long_text, max_summary_size=50),
            "extracted": self.smart_data_extraction(long_text, max_summary_size=50),
            "translated": self.translate("hello", "french"),
        }))
"""


@pytest.fixture
async def layer(tmp_path: Path, personalities: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A server with the layer's processors and an image binding (``[defaults] tti``)."""
    zoo_personality(personalities, "utilities", UTILITIES)
    zoo_personality(personalities, "model_and_types", MODEL_AND_TYPES)
    zoo_personality(personalities, "functions", FUNCTIONS)
    zoo_personality(personalities, "tti_services", TTI_SERVICES)
    zoo_personality(personalities, "missing", MISSING)
    zoo_personality(personalities, "document_tasks", DOCUMENT_TASKS)
    zoo_personality(personalities, "old_style_calls", OLD_STYLE_CALLS)
    own_personality(personalities, "own_painter", OWN_PAINTER)
    bindings = tmp_path / "bindings"
    bindings.mkdir()
    (bindings / "paint.py").write_text(PAINT_BINDING)
    config = server_config(
        personalities,
        """
        [bindings.painter]
        type = "paint"

        [bindings.caller]
        type = "scripted"
        reply = {CALLS}

        [bindings.coder]
        type = "scripted"
        reply = {CODER}

        [bindings.dicer]
        type = "scripted"
        reply = {DICE}
        """.replace("{CALLS}", json.dumps(CALLS))
        .replace("{CODER}", json.dumps(CODER_REPLY))
        .replace("{DICE}", json.dumps(DICE_CALLS)),
    ).replace('ttt_binding = "fake"', 'ttt_binding = "fake"\ntti_binding = "painter"')
    config = config.replace("[paths]\n", f'[paths]\nbindings = "{bindings}"\n')
    path = tmp_path / "config.toml"
    path.write_text(config)
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=AUTH
        ) as c,
    ):
        yield c


async def _answer(client: httpx.AsyncClient, personality: str, **body: Any) -> Any:
    response = await generate(client, prompt="hello", personality=personality, **body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_utilities_files_urls_packages_and_refusals(
    layer: httpx.AsyncClient, tmp_path: Path
) -> None:
    answer = json.loads((await _answer(layer, "utilities"))["output"][0]["data"])
    assert answer["note"].startswith("/api/v1/personality_files/zoo/utilities/discussions/")
    assert answer["report"] == "/api/v1/personality_files/zoo/utilities/outputs/report.md"
    note = await layer.get(answer["note"])
    assert note.status_code == 200 and note.text == "written by the processor"
    assert note.headers["content-security-policy"].startswith("sandbox")
    report = await layer.get(answer["report"])  # markdown: a download, never a page
    assert report.headers["content-type"] == "application/octet-stream"
    assert report.content == b"# report"
    keyless = await layer.get(answer["note"], headers={"Authorization": ""})
    assert keyless.status_code == 401
    for outside in ("../config.toml", "zoo/utilities/../../../config.toml", "zoo/nothing.txt"):
        assert (await layer.get(f"/api/v1/personality_files/{outside}")).status_code == 404
    data = tmp_path / "personality_data" / "zoo" / "utilities"
    assert (data / "outputs" / "report.md").read_text() == "# report"
    assert answer["index"] == 0
    assert answer["fresh"] == ["note_1.txt", "note_2.txt"]  # note_0.txt was written first
    assert "git_pull of utilities was refused" in answer["pulled"]
    assert answer["reshaped"] == "Q: why? H: four five six"  # the history keeps its end
    assert (answer["json_installed"], answer["missing_installed"]) == (True, False)
    assert (answer["language"], answer["dialog"]) == ("fr", False)


async def test_calculator_dice_and_old_style_function_calls(layer: httpx.AsyncClient) -> None:
    """interact_with_function_call given a prompt text (older lollms), with the calculator
    and the die lollms offers; the calculator evaluates arithmetic only, within bounds."""
    body = await _answer(layer, "old_style_calls", binding_name="dicer")
    answer = json.loads(body["output"][0]["data"])
    computed, die = answer["results"]
    assert computed == "42" and 1 <= int(die) <= 6
    assert answer["members"] == ["old_style_calls"]
    assert "is not arithmetic" in answer["refused"]
    assert "exponents are at most" in answer["bounded"]


async def test_document_and_code_helpers(layer: httpx.AsyncClient) -> None:
    """lollms' summarize/extract/translate helpers, save_text, and Python the model wrote,
    run inside the processor's confinement."""
    body = await _answer(layer, "document_tasks", binding_name="coder")
    answer = json.loads(body["output"][0]["data"])
    assert answer["double"] == 42 and answer["imports"]
    assert answer["printed"] == "42\n" and answer["made"]
    assert answer["outside"].startswith("Error executing Python code")
    assert "may not write outside its working folder" in answer["outside"]
    assert not Path("/tmp/lollms-test-outside.txt").exists()
    assert "ValueError: bad value" in answer["failed"]
    assert answer["saved"] == "saved text"
    assert answer["short"] == "a short text"  # it fits already: no generation
    # 700 words do not fit in 50 tokens: summarized (the scripted model answers its reply)
    assert answer["summary"] == answer["extracted"] == answer["translated"] == CODER_REPLY
    steps = [s["text"] for s in body["steps"] if s["kind"] == "step_start"]
    assert "Compressing chunk... [depth 1]" in steps and "Rewriting..." in steps


async def test_model_types_paths_and_context_details(layer: httpx.AsyncClient) -> None:
    body = await _answer(layer, "model_and_types", binding_name="small")
    answer = json.loads(body["output"][0]["data"])
    assert answer["ctx"] == answer["ctx_details"] == 120  # the model's, not a default
    assert answer["tokens"] == 3 and answer["round_trip"] == "alpha beta gamma"
    assert answer["generated"] == "say it"  # the scripted model echoes the user's turn
    assert answer["action"] == 5 and answer["joined"] == ""
    # hierarchical: each chunk summarized alone (the scripted model echoes), then joined
    assert answer["summary"] == "chunk:\nfirst chunk\nchunk:\nsecond chunk"
    assert answer["discussion"] and answer["paths"] and answer["messages"] == ["hello"]
    assert answer["tag"] == (
        '<a href="#" class="lollms-text-tag" data-offset="2" data-text="Yg==">&lt;see&gt;</a>'
    )
    assert "Doc &lt;1&gt;" in answer["block"] and "body &amp; more" in answer["block"]
    assert 'href="https://example.org"' in answer["block"]
    assert "<pre>[&#x27;a&lt;b&#x27;, &#x27;c&#x27;]</pre>" in answer["listed"]  # a list, as text
    assert {"kind": "info", "text": "informed", "ok": None, "data": {}} in body["steps"]
    summarize = binding_of(layer, "small").requests
    assert any("second chunk" in m.content for r in summarize for m in r.messages)
    # the zoo's categories (the folders beside this personality's own), plus "personal",
    # as empty folders of its working folder
    assert answer["zoo"] == ["own", "personal", "zoo"]
    assert isinstance(answer["answered"], str)
    answered = [r for r in summarize if any("an extra entry" in m.content for m in r.messages)]
    assert answered  # answer's prompt: the discussion, the custom entry, the conditioning
    assert "hello" in answered[0].messages[-1].content
    assert any("Be helpful." in m.content for m in answered[0].messages)


async def test_function_calls_and_images_through_the_server(layer: httpx.AsyncClient) -> None:
    body = await _answer(layer, "functions", binding_name="caller")
    text = body["output"][0]["data"]
    urls = [line.strip("\n!()[]") for line in text.split() if "personality_files" in line]
    assert len(urls) == 2  # the model's build_image call, then the processor's own
    for url in urls:
        image = await layer.get(url[url.index("/api/") :])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
    assert "take_a_photo is not available on a server" in text
    painted = binding_of(layer, "painter").requests
    assert [r.messages[-1].content for r in painted[-2:]] == ["a cat", "a red fox"]
    assert (painted[-2].media.width, painted[-2].media.height) == (64, 64)


async def test_tti_services_paint_with_the_server_binding(layer: httpx.AsyncClient) -> None:
    text = (await _answer(layer, "tti_services"))["output"][0]["data"]
    files = text.split(" | ")
    assert all(Path(f).is_file() and Path(f).read_bytes().startswith(b"\x89PNG") for f in files[:3])
    assert len(set(files[:3])) == 3 and files[3] == "42"
    sd = binding_of(layer, "painter").requests[-3]
    assert sd.params.seed == 42 and sd.media.negative_prompt == "blurry"
    assert (sd.media.width, sd.media.height) == (256, 320)


async def test_missing_names_say_what_is_missing(layer: httpx.AsyncClient) -> None:
    errors = (await _answer(layer, "missing"))["output"][0]["data"].splitlines()
    assert errors == [
        "AIPersonality.no_such_thing is not provided by lollms_server's zoo compatibility layer",
        "APScript.no_such_helper is not provided by lollms_server's zoo compatibility layer",
        "tts is not available to personalities on lollms_server (personality.app.tts.tts_audio)",
        "'lollms.utilities.nope' is not provided by lollms_server's zoo compatibility layer",
        "lollms.functions.no_such_module.thing is not available on this server (lollms_server)",
    ]


# -- the sandbox: a processor does not change the server's machine ----------------------------
INSTALLS = """
import json
import os
import subprocess
import sys

import pipmaster as pm
from lollms.personality import APScript
from lollms.utilities import PackageManager

AT_IMPORT = pm.ensure_packages({"lollms-test-absent-a": ">=1.0"})
PIP = subprocess.run([sys.executable, "-m", "pip", "install", "lollms-test-absent-b"],
                     capture_output=True, text=True)


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        npm = subprocess.run("cd /tmp && npm install -g lollms-test-absent-c", shell=True)
        system = os.system("pip3 install --user lollms-test-absent-d")
        manager = PackageManager.install_package("lollms-test-absent-e")
        present = pm.is_installed("pyyaml") and pm.install_if_missing("pyyaml")
        with open("stray.txt", "w") as stray:
            stray.write("a stray write")
        where = subprocess.run(["pwd"], capture_output=True, text=True).stdout.strip()
        try:
            os.chdir("/")
            moved = "moved"
        except PermissionError as exc:
            moved = str(exc)
        self.set_message_content(json.dumps({
            "at_import": AT_IMPORT, "pip": [PIP.returncode, PIP.stderr], "npm": npm.returncode,
            "system": system, "manager": manager, "present": present, "where": where,
            "getcwd": os.getcwd(), "moved": moved,
        }))
"""
IMPORTS_REFUSED = """
import pipmaster as pm

pm.install("lollms-test-absent-f")
import lollms_test_absent_f
from lollms.personality import APScript


class Processor(APScript):
    pass
"""


async def test_installs_are_refused_and_writes_stay_in_the_working_folder(
    client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lollms_server.personalities")
    response = await generate(client, prompt="go", personality="installs")
    assert response.status_code == 200, response.text
    body = response.json()
    answer = json.loads(body["output"][0]["data"])
    home = tmp_path / "personality_data" / "zoo" / "installs"
    assert answer["at_import"] is False and answer["manager"] is False
    assert answer["pip"][0] == 1 and "lollms-test-absent-b" in answer["pip"][1]
    assert (answer["npm"], answer["system"]) == (1, 256)  # exit status 1
    assert answer["present"] is True  # checks work; nothing to install, nothing refused
    assert answer["where"] == answer["getcwd"] == str(home.resolve())
    assert "may not change the server's working directory" in answer["moved"]
    assert (home / "stray.txt").read_text() == "a stray write"
    assert not (Path.cwd() / "stray.txt").exists()
    warnings = [s["text"] for s in body["steps"] if s["kind"] == "warning"]
    for package in ("lollms-test-absent-c", "lollms-test-absent-d", "lollms-test-absent-e"):
        assert any(package in w and "was refused" in w for w in warnings), package
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for package in "abcde":  # the import-time ones too, with what asked for them
        assert f"installing lollms-test-absent-{package} (" in logged
    assert "(pipmaster.ensure_packages) was refused" in logged
    assert "(`npm` run by the processor) was refused" in logged
    refused = await generate(client, prompt="go", personality="imports_refused")
    assert refused.status_code == 503
    assert (
        "No module named 'lollms_test_absent_f' (installing it through pipmaster.install "
        in (refused.json()["error"]["message"])
    )


CONFINED = """
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from lollms.functions.timers import set_timer_with_alert_function
from lollms.personality import APScript

AT_IMPORT = []
try:  # its own folder is not its working folder
    (Path(__file__).parent / "lollms_zoo_import_probe.txt").write_text("x")
except PermissionError as exc:
    AT_IMPORT.append(str(exc))
HOME = Path(os.path.expanduser("~"))  # its process's home: the working folder


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        outcome = {"at_import": AT_IMPORT, "home": str(HOME), "pid": os.getpid()}
        for name, attempt in (
            ("outside", lambda: Path(prompt).write_text("escaped")),
            ("network", lambda: socket.getaddrinfo("localhost", 80) and "resolved"),
            ("inside", lambda: open("notes.txt", "w").write("kept") and "written"),
            ("server_cwd", lambda: Path("stray.txt").write_text("x")),
        ):
            try:
                outcome[name] = attempt()
            except PermissionError as exc:
                outcome[name] = str(exc)
        probe = "import os; print(os.environ.get('ZOO_TEST_API_KEY'))"
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        outcome["secret"] = [os.environ.get("ZOO_TEST_API_KEY"), child.stdout.strip()]
        outcome["drivers"] = [os.environ.get(k) for k in ("SDL_AUDIODRIVER", "MPLBACKEND")]
        outcome["function"] = set_timer_with_alert_function(self, client)["function"]()
        self.set_message_content(json.dumps(outcome))
"""


LENIENT = """
import json
from typing import Callable

from lollms.functions.take_a_photo import take_photo
from lollms.personality import APScript
from lollms.utilities import check_and_install_torch, personality_path_to_url


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, [
            {"name": "idle", "commands": {"help": self.help}, "default": self.idle},
        ], callback=callback)

    def help(self, prompt, full_context):
        self.set_message_content("help")

    def idle(self, prompt, full_context):  # lollms 9 handlers take two arguments
        with open("report.txt", "w") as report:
            report.write("seen")
        self.set_message_content(json.dumps({
            "joined": "\\n".join([self.context["user_description"], self.context["documentation"]]),
            "photo": take_photo(),
            "url": personality_path_to_url("report.txt"),
            "torch": check_and_install_torch() in (True, False),
        }))
        self.json({"handler": self.idle}, self.callback)  # no title: lollms 9's call

    # MSG_OPERATION_TYPE and Client are not imported: the annotations still resolve
    def run_workflow(self, prompt: str, previous_discussion_text: str = "",
                     callback: Callable[[str, MSG_OPERATION_TYPE, dict], bool] = None,
                     context_details: dict = None, client: Client = None):
        self.callback = callback
        self.context = context_details
        self.process_state(prompt, previous_discussion_text, callback, context_details, client)
"""


async def test_lenient_with_what_lollms_9_processors_do(client: httpx.AsyncClient) -> None:
    body = await _answer(client, "lenient")
    answer = json.loads(body["output"][0]["data"])
    assert answer["joined"] == "\n"  # text fields are strings, never None
    assert "take_a_photo is not available on a server" in answer["photo"]
    assert answer["url"] == "/api/v1/personality_files/zoo/lenient/report.txt"
    assert answer["torch"] is True
    infos = [s for s in body["steps"] if "handler" in json.dumps(s)]
    assert infos, body["steps"]


async def test_a_processor_is_confined_to_its_folder_without_network_or_secrets(
    client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_TEST_API_KEY", "sk-server-secret")
    outside = tmp_path / "outside.txt"
    response = await generate(client, prompt=str(outside), personality="confined")
    assert response.status_code == 200, response.text
    answer = json.loads(response.json()["output"][0]["data"])
    home = tmp_path / "personality_data" / "zoo" / "confined"
    assert (
        "personality 'confined' may not write outside its working folder"
        in (answer["at_import"][0])
    )
    assert Path(answer["home"]) == home.resolve()
    assert answer["pid"] != os.getpid()  # its own process
    assert (
        "personality 'zoo/confined' may not write outside its working folder" in (answer["outside"])
    )
    assert not outside.exists()
    assert "may not use the network (socket.getaddrinfo 'localhost')" in answer["network"]
    assert answer["inside"] == "written" and (home / "notes.txt").read_text() == "kept"
    # relative paths (pathlib's too) lead to the working folder: its process runs there
    assert answer["server_cwd"] == 1 and (home / "stray.txt").exists()
    assert not (Path.cwd() / "stray.txt").exists()
    assert answer["secret"] == [None, "None"]
    assert answer["drivers"] == ["dummy", "Agg"]  # headless: pygame's mixer opens, no card
    assert "set_timer_with_alert (lollms.functions.timers) is not available" in answer["function"]
    response = await generate(client, prompt=str(outside), personality="online")
    assert response.status_code == 200, response.text
    online = json.loads(response.json()["output"][0]["data"])
    assert online["network"] == "resolved"  # its config.yaml says network: true
    assert "may not write outside" in online["outside"] and not outside.exists()


@pytest.mark.parametrize(
    ("command", "found"),
    [
        (["/venv/bin/python3.11", "-m", "pip", "install", "-U", "x>=1"], ("pip", ["x>=1"])),
        ("cd /tmp && sudo npm i -g left-pad", ("npm", ["left-pad"])),
        ("uv pip install torch", ("uv pip", ["torch"])),
        (["pip3.12", "uninstall", "-y", "numpy"], ("pip", ["numpy"])),
        ("conda install -c conda-forge ffmpeg", ("conda", ["conda-forge", "ffmpeg"])),
        (["npm", "run", "build"], None),
        ("pip list", None),
        (["ffmpeg", "-i", "in.wav", "out.mp3"], None),
    ],
)
def test_installer_commands_are_recognized(command: Any, found: Any) -> None:
    from lollms_server.personalities.zoo.sandbox import installer_command

    assert installer_command(command) == found


# -- dependencies made explicit ---------------------------------------------------------------
NEEDY = """
import json

import yaml
from helper import shout

try:
    import lollms_test_absent_h
except ImportError:
    lollms_test_absent_h = None
import lollms_test_absent_i
from lollms.personality import APScript
"""


def _needy(root: Path) -> None:
    zoo_personality(
        root, "needy", NEEDY, "dependencies:\n  - pyyaml>=5\n  - lollms-test-absent-g\n"
    )
    (root / "zoo" / "needy" / "scripts" / "helper.py").write_text("def shout(x): return x\n")


async def test_listing_shows_missing_packages(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/api/v1/list_personalities")).json()["personalities"]
    missing = {p["id"]: p["missing_packages"] for p in listed}
    assert missing["zoo/installs"] == ["lollms-test-absent-a", "lollms-test-absent-e"]
    assert missing["zoo/imports_refused"] == ["lollms-test-absent-f", "lollms_test_absent_f"]
    assert missing["zoo/bounded"] == []
    details = (await client.get("/api/v1/personalities/zoo/installs")).json()
    assert details["missing_packages"] == missing["zoo/installs"]
    pyyaml = next(n for n in details["needs"] if n["name"] == "pyyaml")
    assert pyyaml == {
        "name": "pyyaml",
        "kind": "install",
        "source": "scripts/processor.py line 24",
        "optional": False,
        "installed": True,
    }


def test_deps_command_lists_what_each_scripted_personality_needs(
    personalities: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from lollms_server.cli import main

    _needy(personalities)
    config = tmp_path / "config.toml"
    config.write_text(server_config(personalities))
    one = CliRunner().invoke(main, ["personalities", "deps", "needy", "-c", str(config)])
    assert one.exit_code == 1, one.output
    lines = [" ".join(line.split()) for line in one.output.splitlines()]
    assert lines[0] == "zoo/needy (zoo script)"
    assert "MISSING lollms-test-absent-g dependency dependencies" in lines
    assert "MISSING lollms_test_absent_i import scripts/processor.py line 11" in lines
    assert "optional lollms_test_absent_h import scripts/processor.py line 8" in lines
    assert "ok pyyaml>=5 dependency dependencies" in lines
    assert "ok yaml import scripts/processor.py line 4" in lines
    assert not any("helper" in line or "json" in line for line in lines)  # its own, stdlib
    every = CliRunner().invoke(main, ["personalities", "deps", "-c", str(config)])
    assert every.exit_code == 1
    shown = [line for line in every.output.splitlines() if not line.startswith(" ")]
    assert "zoo/bounded (zoo script)" in shown and "own/own_bounded (workflow script)" in shown
    unknown = CliRunner().invoke(main, ["personalities", "deps", "nobody", "-c", str(config)])
    assert unknown.exit_code == 2 and "no personality 'nobody'" in unknown.output


async def test_own_scripts_generate_media_with_options(layer: httpx.AsyncClient) -> None:
    body = await _answer(layer, "own_painter")
    assert body["output"][0]["type"] == "image"
    painted = binding_of(layer, "painter").requests[-1]
    assert painted.messages[-1].content == "a fox" and painted.params.seed == 3
    assert (painted.media.width, painted.media.height) == (64, 96)


# -- the real zoo (LOLLMS_TEST_ZOO): every processor completes or says what it lacks ---------
_REASON = (
    "is not provided by lollms_server",  # a lollms name or module
    "No module named",  # a package (its install refused)
    "may not",  # the sandbox
    "Error:",  # the processor's own exception, by type
    "did not finish",  # a timeout
)


async def test_real_zoo_processors_complete_or_name_what_they_lack(tmp_path: Path) -> None:
    from tests.zoo_fixture import SKIP_REASON, real_zoo

    zoo = real_zoo()
    if zoo is None:
        pytest.skip(SKIP_REASON)
    if not any(zoo.rglob("scripts/processor.py")):
        pytest.skip(f"{zoo} holds no scripts/processor.py (configs only)")
    path = tmp_path / "config.toml"
    path.write_text(
        server_config(Path("unused")).replace('"unused"', f'"{zoo}"')
        + "\n[personalities]\nscript_timeout = 60\n"
    )
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://zoo", headers=AUTH
        ) as c,
    ):
        listed = (await c.get("/api/v1/list_personalities")).json()["personalities"]
        ids = [p["id"] for p in listed if p["script_kind"] == "zoo" and p["script_available"]]
        unexplained = []
        for pid in ids:
            body = {"prompt": "Hello", "personality": pid, "parameters": {"max_tokens": 8}}
            response = await c.post("/api/v1/generate", json=body)
            message = response.json().get("error", {}).get("message", "")
            if response.status_code != 200 and not any(r in message for r in _REASON):
                unexplained.append((pid, response.status_code, message))
    assert not unexplained


def _wheel(folder: Path, distribution: str, module: str) -> None:
    """A minimal pure-Python wheel of ``distribution`` holding ``module`` (for pip offline)."""
    import zipfile

    stem = distribution.replace("-", "_")
    info = f"{stem}-1.0.dist-info"
    files = {
        f"{module}.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{name},,\n" for name in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{stem}-1.0-py3-none-any.whl", "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)


def test_install_deps_installs_only_what_is_missing_when_the_operator_runs_it(
    personalities: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from lollms_server.cli import main

    _needy(personalities)
    zoo_personality(
        personalities,
        "wheelie",
        "import cv2\nimport yaml\n" + BOUNDED,
        "dependencies:\n  - lollms-test-wheel-k\n",
    )
    config = tmp_path / "config.toml"
    config.write_text(server_config(personalities))
    dry = CliRunner().invoke(
        main, ["personalities", "install-deps", "needy", "-c", str(config), "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    command = dry.output.splitlines()[0].split()
    assert command[1:4] == ["-m", "pip", "install"]
    # missing ones only: not pyyaml (installed), not the optional import
    assert command[4:] == ["lollms-test-absent-g", "lollms_test_absent_i"]
    wheels, target = tmp_path / "wheels", tmp_path / "target"
    wheels.mkdir()
    _wheel(wheels, "lollms-test-wheel-k", "lollms_test_wheel_k")
    _wheel(wheels, "opencv-python", "cv2")  # the import cv2 is the distribution opencv-python
    pip = ["--no-index", "--find-links", str(wheels), "--target", str(target)]
    refused = CliRunner().invoke(
        main,
        ["personalities", "install-deps", "wheelie", "-c", str(config), "--", *pip],
        input="n\n",
    )
    assert refused.exit_code == 1 and not target.exists()  # asked first, installed nothing
    done = CliRunner().invoke(
        main, ["personalities", "install-deps", "wheelie", "-c", str(config), "-y", "--", *pip]
    )
    assert done.exit_code == 0, done.output
    assert done.output.split()[-2:] == ["lollms-test-wheel-k", "opencv-python"]
    assert (target / "lollms_test_wheel_k.py").read_text() == "VALUE = 42\n"
    assert (target / "cv2.py").is_file()
