from __future__ import annotations

from pathlib import Path

import pytest

from lollms_server.app import build_registry
from lollms_server.bindings.manager import BindingManager
from lollms_server.config import load_config
from lollms_server.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_defaults_without_file(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_config(None)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 9601
    assert settings.security.api_keys == []
    assert settings.source == "<defaults>"


def test_example_file_is_valid_and_matches_init_template() -> None:
    example = REPO / "config.toml.example"
    template = REPO / "src/lollms_server/data/config.toml"
    assert example.read_text() == template.read_text()
    settings = load_config(example)
    assert settings.bindings["default_llm"]["type"] == "llamacpp"
    assert settings.defaults.ttt_binding == "default_llm"


def test_syntax_error_names_file(write_config) -> None:
    path = write_config("[server\nport = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "TOML syntax error" in str(info.value)


def test_unknown_key_is_named(write_config) -> None:
    path = write_config("[server]\nprot = 9000\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "server.prot"
    assert "unknown key" in str(info.value)


def test_wrong_type_is_named_with_expectation(write_config) -> None:
    path = write_config('[server]\nport = "eighty"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "server.port"
    assert "integer" in str(info.value)
    assert "eighty" in str(info.value)


def test_missing_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lollms-server init"):
        load_config(tmp_path / "nope.toml")


def test_key_entry_needs_exactly_one_of_key_or_sha256(write_config) -> None:
    path = write_config('[[security.api_keys]]\nname = "a"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "security.api_keys.0"
    bad_hash = write_config('[[security.api_keys]]\nname = "a"\nsha256 = "zz"\n')
    with pytest.raises(ConfigError, match="sha256"):
        load_config(bad_hash)


def test_plain_key_value_never_echoed_in_errors(write_config) -> None:
    path = write_config('[[security.api_keys]]\nname = "a"\nkey = "hunter2-secret"\nextra = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "hunter2-secret" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        '[security]\napi_keys = "hunter2-secret"\n',  # a key typed where a list goes
        '[[security.api_keys]]\nname = "a"\nkey = "hunter2-secret"\nsha256 = "%s"\n' % ("0" * 64),
        '[[security.api_keys]]\nname = "a"\nsha256 = "hunter2-secret"\n',  # the key, not its hash
        '[bindings]\nup = "hunter2-secret"\n',
        '[bindings.up]\ntype = "openai"\nheaders = "Authorization: Bearer hunter2-secret"\n',
        '[bindings.up]\ntype = "openai"\nmodels = "hunter2-secret"\n',
    ],
)
def test_no_config_error_echoes_a_possible_secret(write_config, text: str) -> None:
    from lollms_server.app import build_registry
    from lollms_server.bindings.manager import BindingManager

    with pytest.raises(ConfigError) as info:
        BindingManager.from_settings(
            settings := load_config(write_config(text)), build_registry(settings)
        )
    assert "hunter2-secret" not in str(info.value)
    assert info.value.key  # still names the key


def test_unparsable_environment_variable_is_a_config_error(write_config, monkeypatch) -> None:
    monkeypatch.setenv("LOLLMS_SECURITY__API_KEYS", '[{"name": "a", "key": "hunter2-secret"')
    with pytest.raises(ConfigError, match="environment variable") as info:
        load_config(write_config("[server]\n"))
    assert "hunter2-secret" not in str(info.value)


def test_environment_overrides_file(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config('[server]\nport = 9000\nhost = "127.0.0.1"\n')
    monkeypatch.setenv("LOLLMS_SERVER__PORT", "9777")
    monkeypatch.setenv("LOLLMS_DEFAULTS__TTT_MODEL", "from-env")
    settings = load_config(path)
    assert settings.server.port == 9777
    assert settings.server.host == "127.0.0.1"  # the rest of the table is kept
    assert settings.defaults.ttt_model == "from-env"


def test_bad_environment_value_is_an_error(write_config, monkeypatch) -> None:
    monkeypatch.setenv("LOLLMS_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_config(write_config("[server]\n"))
    assert info.value.key == "server.port"
    assert "environment variable LOLLMS_SERVER__PORT" in str(info.value)  # not the file


def test_relative_paths_resolve_against_config_folder(write_config, tmp_path: Path) -> None:
    settings = load_config(write_config('[paths]\nmodels = "my_models"\n'))
    assert settings.resolve_path(settings.paths.models) == tmp_path / "my_models"


def _manager(write_config, text: str) -> BindingManager:
    settings = load_config(write_config(text))
    return BindingManager.from_settings(settings, build_registry(settings))


def test_unknown_binding_type_lists_known_types(write_config) -> None:
    with pytest.raises(ConfigError) as info:
        _manager(write_config, '[bindings.x]\ntype = "nosuch"\n')
    assert info.value.key == "bindings.x.type"
    assert "nosuch" in str(info.value) and "llamacpp" in str(info.value)


def test_missing_binding_type(write_config) -> None:
    with pytest.raises(ConfigError) as info:
        _manager(write_config, "[bindings.x]\nmodels = []\n")
    assert info.value.key == "bindings.x.type"


def test_binding_settings_validated_by_binding_config(write_config) -> None:
    with pytest.raises(ConfigError) as info:
        _manager(write_config, '[bindings.llm]\ntype = "llamacpp"\nn_ctxx = 10\n')
    assert info.value.key == "bindings.llm.n_ctxx"
    with pytest.raises(ConfigError) as info:
        _manager(write_config, '[bindings.llm]\ntype = "llamacpp"\nn_parallel = "many"\n')
    assert info.value.key == "bindings.llm.n_parallel"


def test_binding_paths_are_relative_to_the_config_folder(
    write_config, tmp_path: Path, monkeypatch
) -> None:
    from lollms_server.app import build_registry
    from lollms_server.bindings.manager import BindingManager

    settings = load_config(
        write_config(
            '[security]\nallow_no_keys = true\n[bindings.llm]\ntype = "llamacpp"\n'
            'models_folder = "ggufs"\nmodels = { mine = "../elsewhere/mine.gguf" }\n'
        )
    )
    monkeypatch.chdir("/")  # started from anywhere
    binding = BindingManager.from_settings(settings, build_registry(settings)).get("llm")
    assert binding.config.models_folder == tmp_path / "ggufs"  # type: ignore[attr-defined]
    assert binding.config.models["mine"] == (  # type: ignore[attr-defined]
        tmp_path.parent / "elsewhere" / "mine.gguf"
    )


def test_example_documents_every_setting() -> None:
    """config.toml.example names every key of every section (bindings: see the next test)."""
    from lollms_server.config import Settings

    text = (REPO / "config.toml.example").read_text()
    for section, field in Settings.model_fields.items():
        if section in ("bindings", "aliases"):
            continue
        assert f"[{section}]" in text, section
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            assert any(
                form in text for form in (f"\n{key} =", f"\n# {key} =", f"[[{section}.{key}]]")
            ), f"{section}.{key}"


def test_bindings_command_documents_every_setting_of_a_type() -> None:
    from click.testing import CliRunner

    from lollms_server.bindings.llamacpp import LlamaCppConfig
    from lollms_server.cli import main

    result = CliRunner().invoke(main, ["bindings", "llamacpp"])
    assert result.exit_code == 0
    keys = {line.split(" = ")[0] for line in result.output.splitlines() if " = " in line}
    assert set(LlamaCppConfig.model_fields) <= keys
    assert "n_ctx = 4096   # Context size" in result.output
    listing = CliRunner().invoke(main, ["bindings"])
    assert "piper" in listing.output and "llamacpp" in listing.output


def test_environment_overrides_binding_settings(write_config, monkeypatch) -> None:
    """LOLLMS_BINDINGS__<INSTANCE>__<KEY>: the instance in any case, lists as JSON."""
    path = write_config(
        '[security]\nallow_no_keys = true\n[bindings.MyLLM]\ntype = "scripted"\nmodels = ["a"]\n'
    )
    monkeypatch.setenv("LOLLMS_BINDINGS__MYLLM__MODELS", '["x", "y"]')
    monkeypatch.setenv("LOLLMS_BINDINGS__myllm__DELAY_S", "0.5")
    settings = load_config(path)
    assert settings.bindings == {
        "MyLLM": {"type": "scripted", "models": ["x", "y"], "delay_s": "0.5"}
    }


def test_bad_binding_setting_from_the_environment_names_the_variable(
    write_config, monkeypatch
) -> None:
    """The binding's own schema finds the error; the variable that set it is named too."""
    monkeypatch.setenv("LOLLMS_BINDINGS__X__DELAY_S", "bad")
    with pytest.raises(ConfigError) as info:
        _manager(write_config, '[bindings.x]\ntype = "scripted"\n')
    assert info.value.key == "bindings.x.delay_s"
    assert "environment variable LOLLMS_BINDINGS__X__DELAY_S" in str(info.value)


def test_malformed_json_in_the_environment_names_the_variable_and_the_key(
    write_config, monkeypatch
) -> None:
    monkeypatch.setenv("LOLLMS_SERVER__CORS_ORIGINS", '["https://a.example",')
    with pytest.raises(ConfigError) as info:
        load_config(write_config("[server]\n"))
    assert info.value.key == "server.cors_origins"
    assert "environment variable LOLLMS_SERVER__CORS_ORIGINS" in str(info.value)
    assert "JSON" in str(info.value)
    assert "https://a.example" not in str(info.value)  # the value may hold a secret
