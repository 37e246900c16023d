"""Loading personalities in both formats: the fixture zoo (tests/zoo_fixture.py) always, and a
real zoo checkout (LOLLMS_TEST_ZOO, e.g. ../shared/personalities) when one is named."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from lollms_server.bindings.types import Message, SamplingParams
from lollms_server.errors import AmbiguousName, BadRequest
from lollms_server.personalities.prompting import (
    apply_sampling,
    render_lollms_prompt,
    split_lollms_prompt,
    system_prompt,
    with_system,
)
from lollms_server.personalities.registry import PersonalityNotFound, PersonalityRegistry
from tests.zoo_fixture import LEGACY, LOGOS, PROBLEMS, SCRIPT_MISSING, SOUL

EXAMPLES = Path(__file__).resolve().parents[2] / "zoos" / "personalities"
LEGACY_SCRIPTED = [
    "scifi/ferengi_trader",
    "data_formatting/invoicetex",
    "generic/lollmz",
    "art_tools/image_analyzer",
]


@pytest.fixture(scope="module")
def fzoo(fixture_zoo: Path) -> PersonalityRegistry:
    """The fixture zoo, discovered once."""
    return PersonalityRegistry.discover([fixture_zoo])


@pytest.fixture(scope="module")
def zoo(real_zoo_root: Path) -> PersonalityRegistry:
    """The real zoo named by LOLLMS_TEST_ZOO (tests using it skip when it is unset)."""
    return PersonalityRegistry.discover([real_zoo_root])


# The fixture zoo: runs everywhere.


def test_fixture_zoo_loads_in_both_formats(fixture_zoo: Path, fzoo: PersonalityRegistry) -> None:
    assert (len(LEGACY), len(SOUL)) == (12, 6)
    assert [p.id for p in fzoo.all()] == sorted(LEGACY + SOUL, key=str.lower)
    assert {p.id: p.format for p in fzoo.all()} == {
        **dict.fromkeys(LEGACY, "config.yaml"),
        **dict.fromkeys(SOUL, "SOUL.md"),
    }
    assert all(p.name and p.conditioning for p in fzoo.all())
    # Refused, each with its reason: YAML aliases, broken YAML, a list instead of keys.
    problems = {Path(p.path).name: p.reason for p in fzoo.problems}
    assert list(problems) == list(PROBLEMS)
    for folder, words in PROBLEMS.items():
        assert words in problems[folder], (folder, problems[folder])
    assert "config.yaml: invalid YAML at line 5" in problems["aliased"]
    assert all(Path(p.path).is_relative_to(fixture_zoo) for p in fzoo.problems)


def test_fixture_awkward_cases(fzoo: PersonalityRegistry) -> None:
    engraver = fzoo.get("score_engraver")  # no version key
    assert engraver.version is None and engraver.author == "a tester"
    assert engraver.dependencies == ["lilypond"]  # reported, never installed
    assert any("lilypond" in w for w in engraver.warnings)
    tutor = fzoo.get("basic tutor")  # no author, no version; whole lollms headers as prefixes
    assert (tutor.author, tutor.version) == (None, None)
    assert (tutor.user_message_prefix, tutor.ai_message_prefix) == ("Student", "Tutor")
    storyteller = fzoo.get("storyteller")  # category: [art_writing]
    assert storyteller.categories == ["art_writing"] and storyteller.category == "art_writing"
    assert storyteller.version == "1.0"  # a YAML float, as text
    planner = fzoo.get("shotplanner")  # personality_conditioning as a list of lines
    assert planner.conditioning.splitlines()[0].startswith("You are a careful video")
    assert "- Naming the camera move" in planner.conditioning
    assert planner.version is None and len(planner.prompts_list) == 2
    interviewer = fzoo.get("interviewer")  # link_text: '\n' (a literal backslash-n)
    assert interviewer.raw["link_text"] == "\\n" and interviewer.link_text == "\n"
    assert fzoo.get("orion_merchant").link_text == " "
    polyglot = fzoo.get("generic/polyglot")  # extra keys kept, translation listed
    assert len(polyglot.prompts_list) == 12 and polyglot.raw["lollms_version"] == "0.9.0"
    assert (
        polyglot.prompts_list[0]
        == "@<Translate text>@Translate to [language]:\n[text to translate::multiline]"
    )
    assert polyglot.languages == ["english", "french"] and polyglot.author is None
    extra = fzoo.get("plot_architect").details()["extra"]
    assert extra["processor_cfg"] == {
        "custom_workflow": True,
        "process_model_input": False,
        "process_model_output": False,
    }
    assert [c["value"] for c in extra["commands"]] == ["outline", "reset"]
    assert extra["include_welcome_message_in_discussion"] is True
    for rel, data in LOGOS.items():
        logo = fzoo.get(rel).logo
        assert logo is not None and logo.read_bytes() == data
    assert fzoo.get("orion_merchant").logo is None
    wukong = fzoo.get("sun_wukong")  # SOUL.md: front matter + body
    assert wukong.sampling.temperature == 0.6 and wukong.version == "1.0"
    assert wukong.conditioning.startswith("Act as a description of Sun Wukong")
    assert (
        wukong.description.startswith("The Monkey King") and "\n\nHe boasts" in wukong.description
    )
    coach = fzoo.get("song_coach")  # byte-order mark, CRLF, category list, no author
    assert coach.categories == ["coaching", "music"] and coach.author is None
    assert coach.conditioning == "You coach singers: breathing first, then pitch, then style."
    assert coach.sampling.model_dump(exclude_none=True) == {"temperature": 0.9, "top_k": 30}
    bare = fzoo.get("minimal/bare")  # no front matter: all instructions, named by its folder
    assert (bare.name, bare.conditioning) == ("bare", "Answer in one short sentence.")
    assert fzoo.get("Doc Writer Plus").details()["extra"] == {"tags": ["docs", "python"]}
    nested = fzoo.get("tools/text/case_converter")  # nested category folders
    assert nested.category == "text" and nested.categories == ["tools"]
    odd = fzoo.get("odd_numbers")  # .nan, .inf, negative, too large, not a number
    assert odd.sampling.model_dump(exclude_none=True) == {}
    assert len([w for w in odd.warnings if "not a usable number" in w]) == 5
    merchant = fzoo.get("orion_merchant")
    assert merchant.anti_prompts == ["!@>"] and merchant.language == "english"
    assert merchant.sampling.model_dump() == {
        "temperature": 0.6,
        "top_k": 40,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "max_tokens": 8192,
    }


def test_fixture_addressing_by_name_id_and_ambiguity(fzoo: PersonalityRegistry) -> None:
    merchant = "legacy_config_yaml/scifi/orion_merchant"
    assert fzoo.get("Orion Merchant.").id == merchant
    assert fzoo.get("orion merchant").id == merchant  # the display name without its dot
    assert fzoo.get("scifi/orion_merchant").id == merchant
    assert fzoo.get("SUN WUKONG").id == "soul_md/anime/sun_wukong"
    assert fzoo.get("text/case_converter").id == "legacy_config_yaml/tools/text/case_converter"
    assert fzoo.get("learning/basic tutor").id == "legacy_config_yaml/learning/basic tutor"
    for name in ("coding_python/snakecharmer", "SnakeCharmer"):  # in both formats
        with pytest.raises(AmbiguousName) as exc:
            fzoo.get(name)
        assert "legacy_config_yaml/coding_python/snakecharmer" in exc.value.message
        assert "soul_md/coding_python/snakecharmer" in exc.value.message
    assert fzoo.get("soul_md/coding_python/snakecharmer").format == "SOUL.md"
    assert fzoo.get("legacy_config_yaml/coding_python/snakecharmer").format == "config.yaml"
    with pytest.raises(PersonalityNotFound) as missing:
        fzoo.get("orion_merchan")
    assert "orion_merchant" in missing.value.message  # a suggestion


def test_fixture_translation(fzoo: PersonalityRegistry) -> None:
    polyglot = fzoo.get("generic/polyglot")
    french = fzoo.localized(polyglot, "fr")
    assert french.user_message_prefix == "Utilisateur" and french.language == "français"
    assert "Traducteur des Mille Langues" in french.conditioning
    assert french.sampling == polyglot.sampling  # keys the translation lacks are kept
    assert fzoo.localized(polyglot, "english") is polyglot
    with pytest.raises(BadRequest, match="english, french"):
        fzoo.localized(polyglot, "klingon")
    coach = fzoo.get("song_coach")  # SOUL.md: the translation replaces the body
    chanteur = fzoo.localized(coach, "french")
    assert chanteur.conditioning.startswith("Tu entraînes les chanteurs")
    assert chanteur.format == "SOUL.md" and chanteur.id == coach.id


def test_fixture_scripted_without_their_script_load_as_plain(
    fixture_zoo: Path, fzoo: PersonalityRegistry, tmp_path: Path
) -> None:
    assert sorted(p.id for p in fzoo.all() if p.scripted) == sorted(SCRIPT_MISSING)
    for rel in SCRIPT_MISSING:
        p = fzoo.get(rel)
        assert p.scripted and not p.runs_script and p.script is not None
        assert p.script.kind == "zoo" and p.script.reason == "scripts/processor.py not found"
        assert any("processor.py is missing" in w for w in p.warnings)
        assert p.summary()["script_available"] is False
    # Every personality of the zoo with an empty scripts/ folder: all load, as plain ones.
    for rel in LEGACY + SOUL:
        shutil.copytree(fixture_zoo / rel, tmp_path / rel)
        (tmp_path / rel / "scripts").mkdir(exist_ok=True)
    registry = PersonalityRegistry.discover([tmp_path])
    assert len(registry) == len(LEGACY + SOUL) and registry.problems == []
    for p in registry.all():
        assert p.scripted and not p.runs_script
        assert any("processor.py is missing" in w for w in p.warnings)
        assert p.summary()["script_available"] is False


# A real zoo checkout (LOLLMS_TEST_ZOO): skipped when none is named.


def test_real_zoo_every_personality_loads_in_both_formats(
    real_zoo_root: Path, zoo: PersonalityRegistry
) -> None:
    expected_yaml = len(list((real_zoo_root / "legacy_config_yaml").rglob("config.yaml")))
    expected_soul = len(list((real_zoo_root / "soul_md").rglob("SOUL.md")))
    assert (expected_yaml, expected_soul) == (22, 26)
    formats = [p.format for p in zoo.all()]
    assert formats.count("config.yaml") == expected_yaml
    assert formats.count("SOUL.md") == expected_soul
    assert zoo.problems == []
    assert all(p.name and p.conditioning for p in zoo.all())


def test_real_zoo_awkward_cases(zoo: PersonalityRegistry) -> None:
    lilypond = zoo.get("lilypond_music_generator")  # no version key
    assert lilypond.version is None and lilypond.author == "ParisNeo"
    assert lilypond.dependencies == ["lilypond"]  # reported, never installed
    assert any("lilypond" in w for w in lilypond.warnings)
    storyteller = zoo.get("collaborative_storyteller_ai")  # category: [art_writing]
    assert storyteller.categories == ["art_writing"] and storyteller.category == "art_writing"
    video = zoo.get("videopromptmaster")  # personality_conditioning as a list of lines
    assert video.conditioning.splitlines()[0].startswith("You are a creative")
    assert "- Crafting clear" in video.conditioning
    recruiter = zoo.get("recruiter")  # link_text: '\n' (a literal backslash-n)
    assert recruiter.link_text == "\n"
    assert zoo.get("ferengi_trader").link_text == " "
    lollms = zoo.get("generic/lollms")  # extra keys kept, translation listed
    assert len(lollms.prompts_list) > 10 and lollms.raw["lollms_version"] == "0.9.0"
    assert lollms.languages == ["english", "french"]
    assert "processor_cfg" in zoo.get("novelist").details()["extra"]
    assert zoo.get("invoicetex").logo is not None
    goku = zoo.get("goku")  # SOUL.md: front matter + body
    assert goku.sampling.temperature == 0.6 and goku.version == "1.0"
    assert goku.conditioning.startswith("Act as a description of Goku")
    ferengi = zoo.get("ferengi_trader")
    assert ferengi.anti_prompts == ["!@>"]
    assert ferengi.sampling.model_dump() == {
        "temperature": 0.6,
        "top_k": 40,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "max_tokens": 8192,
    }


def test_real_zoo_addressing_by_name_id_and_ambiguity(zoo: PersonalityRegistry) -> None:
    assert zoo.get("Ferengi Trader").id == "legacy_config_yaml/scifi/ferengi_trader"
    assert zoo.get("scifi/ferengi_trader").id == "legacy_config_yaml/scifi/ferengi_trader"
    assert zoo.get("GOKU").id == "soul_md/anime/goku"
    with pytest.raises(AmbiguousName) as exc:
        zoo.get("coding_python/condamaster")  # in both formats
    assert "legacy_config_yaml/coding_python/condamaster" in exc.value.message
    assert "soul_md/coding_python/condamaster" in exc.value.message
    assert zoo.get("soul_md/coding_python/condamaster").format == "SOUL.md"
    with pytest.raises(PersonalityNotFound) as missing:
        zoo.get("ferengi_trade")
    assert "ferengi_trader" in missing.value.message  # a suggestion


def test_real_zoo_translation(zoo: PersonalityRegistry) -> None:
    lollms = zoo.get("generic/lollms")
    french = zoo.localized(lollms, "fr")
    assert french.user_message_prefix == "Utilisateur"
    assert "Seigneur des Grands" in french.conditioning
    assert zoo.localized(lollms, "english") is lollms
    with pytest.raises(BadRequest, match="english, french"):
        zoo.localized(lollms, "klingon")


def test_real_zoo_scripted_without_their_script_load_as_plain(
    real_zoo_root: Path, tmp_path: Path
) -> None:
    """The zoo's scripted personalities, with a scripts/ folder that lacks processor.py."""
    scripted = [f"legacy_config_yaml/{name}" for name in LEGACY_SCRIPTED]
    scripted += [
        f"soul_md/{line.strip()}"
        for line in (real_zoo_root / "soul_md" / "SCRIPTED.txt").read_text().splitlines()
        if line.strip()
    ]
    for rel in scripted:
        shutil.copytree(real_zoo_root / rel, tmp_path / rel)
        (tmp_path / rel / "scripts").mkdir()
    registry = PersonalityRegistry.discover([tmp_path])
    assert len(registry) == len(scripted) == 16
    for p in registry.all():
        assert p.scripted and not p.runs_script
        assert any("processor.py is missing" in w for w in p.warnings)
        assert p.summary()["script_available"] is False


def test_bad_folders_are_skipped_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cat" / "broken").mkdir(parents=True)
    (tmp_path / "cat" / "broken" / "config.yaml").write_text("name: [unclosed\n")
    (tmp_path / "cat" / "listy").mkdir()
    (tmp_path / "cat" / "listy" / "config.yaml").write_text("- just\n- a list\n")
    (tmp_path / "cat" / "fine").mkdir()
    (tmp_path / "cat" / "fine" / "SOUL.md").write_text("No front matter: all instructions.\n")
    registry = PersonalityRegistry.discover([tmp_path, tmp_path / "missing"])
    assert [p.id for p in registry.all()] == ["cat/fine"]
    reasons = {Path(p.path).name: p.reason for p in registry.problems}
    assert "invalid YAML at line 2" in reasons["broken"]
    assert "expected a mapping" in reasons["listy"]
    assert "skipped personality folder" in caplog.text
    assert registry.get("fine").conditioning == "No front matter: all instructions."


def test_script_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cat" / "sneaky"
    folder.mkdir(parents=True)
    (tmp_path / "evil.py").write_text("async def run_workflow(p, q, c): return 'owned'\n")
    (folder / "config.yaml").write_text("name: sneaky\nscript: ../../evil.py\n")
    p = PersonalityRegistry.discover([tmp_path]).get("sneaky")
    assert p.scripted and not p.runs_script
    assert "inside the personality folder" in p.warnings[0]


def test_prompt_pieces_from_fields() -> None:
    registry = PersonalityRegistry.discover([EXAMPLES])
    guide = registry.get("tour_guide")
    now = datetime(2026, 11, 25, 9, 30)
    system = system_prompt(guide, now=now)
    assert system == (
        "You are Tour Guide, a friendly city guide. Answer traveller in two or "
        "three short,\npractical sentences. Today is 2026-11-25."
    )
    assert "Answer Ada" in system_prompt(guide, user_name="Ada", now=now)
    messages = with_system((Message("system", "Be brief."), Message("user", "Hi")), system)
    assert messages[0].content == f"{system}\n\nBe brief." and len(messages) == 2
    params, extra = apply_sampling(SamplingParams(temperature=0.9, stop=("END",)), {}, guide)
    assert (params.temperature, params.top_k, params.top_p, params.max_tokens) == (
        0.9,
        40,
        0.9,
        256,
    )
    assert params.stop == ("END", "!@>", "Traveller:") and extra == {"repeat_last_n": 64}
    text = render_lollms_prompt(with_system((Message("user", "Paris?"),), "SYS"), guide)
    assert text == "!@>system:\nSYS\n!@>Traveller:\nParis?\n!@>Tour Guide:\n"
    assert split_lollms_prompt(text, ["Tour Guide"], ["Traveller"]) == (
        Message("system", "SYS"),
        Message("user", "Paris?"),
    )
    zoo_style = (
        "!@>system:\nBe brief.\n!@>documentation:\nDOCS\n!@>user:\nQ1\n"
        "!@>extra:\nMORE\n!@>assistant:\nA1\n!@>user:\nQ2\n!@>assistant:"
    )
    assert split_lollms_prompt(zoo_style) == (
        Message("system", "Be brief.\n\ndocumentation:\nDOCS"),
        Message("user", "Q1\n\nextra:\nMORE"),
        Message("assistant", "A1"),
        Message("user", "Q2"),
    )


def test_examples_shipped_in_zoos() -> None:
    registry = PersonalityRegistry.discover([EXAMPLES])
    kinds = {
        p.folder_name: (p.format, p.script.kind if p.script else None, p.runs_script)
        for p in registry.all()
    }
    assert kinds == {
        "tour_guide": ("config.yaml", None, False),
        "haiku_poet": ("SOUL.md", None, False),
        "step_planner": ("config.yaml", "workflow", True),
        "zoo_summarizer": ("config.yaml", "zoo", True),
    }
