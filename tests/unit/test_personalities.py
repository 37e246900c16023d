"""Loading the real zoo's personalities (../shared/personalities) in both formats."""

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

ZOO = Path(__file__).resolve().parents[2].parent / "shared" / "personalities"
EXAMPLES = Path(__file__).resolve().parents[2] / "zoos" / "personalities"
LEGACY_SCRIPTED = [
    "scifi/ferengi_trader",
    "data_formatting/invoicetex",
    "generic/lollmz",
    "art_tools/image_analyzer",
]

pytestmark = pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/personalities is missing")


@pytest.fixture(scope="module")
def zoo() -> PersonalityRegistry:
    return PersonalityRegistry.discover([ZOO])


def test_every_personality_loads_in_both_formats(zoo: PersonalityRegistry) -> None:
    expected_yaml = len(list((ZOO / "legacy_config_yaml").rglob("config.yaml")))
    expected_soul = len(list((ZOO / "soul_md").rglob("SOUL.md")))
    assert (expected_yaml, expected_soul) == (22, 26)
    formats = [p.format for p in zoo.all()]
    assert formats.count("config.yaml") == expected_yaml
    assert formats.count("SOUL.md") == expected_soul
    assert zoo.problems == []
    assert all(p.name and p.conditioning for p in zoo.all())


def test_awkward_cases(zoo: PersonalityRegistry) -> None:
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


def test_addressing_by_name_id_and_ambiguity(zoo: PersonalityRegistry) -> None:
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


def test_translation(zoo: PersonalityRegistry) -> None:
    lollms = zoo.get("generic/lollms")
    french = zoo.localized(lollms, "fr")
    assert french.user_message_prefix == "Utilisateur"
    assert "Seigneur des Grands" in french.conditioning
    assert zoo.localized(lollms, "english") is lollms
    with pytest.raises(BadRequest, match="english, french"):
        zoo.localized(lollms, "klingon")


def test_scripted_without_their_script_load_as_plain(tmp_path: Path) -> None:
    """A zoo checkout whose scripts/ folders lack processor.py (as in ../shared)."""
    scripted = [f"legacy_config_yaml/{name}" for name in LEGACY_SCRIPTED]
    scripted += [
        f"soul_md/{line.strip()}"
        for line in (ZOO / "soul_md" / "SCRIPTED.txt").read_text().splitlines()
        if line.strip()
    ]
    for rel in scripted:
        shutil.copytree(ZOO / rel, tmp_path / rel)
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
