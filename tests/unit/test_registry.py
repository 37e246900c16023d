from __future__ import annotations

import shutil
from pathlib import Path

from lollms_server.bindings.registry import BindingRegistry

REPO = Path(__file__).resolve().parents[2]


def test_builtins_come_from_entry_points() -> None:
    registry = BindingRegistry()
    registry.discover_entry_points()
    assert {"llamacpp", "scripted"} <= set(registry.names())
    llama = registry.get("llamacpp")
    assert llama is not None and llama.cls is not None
    assert llama.origin.startswith("entry point")


def test_listing_llamacpp_does_not_import_the_engine() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from lollms_server.bindings.registry import BindingRegistry;"
        "r = BindingRegistry(); r.discover_entry_points(); r.get('llamacpp');"
        "print('xllamacpp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_drop_in_binding_file_is_discovered(tmp_path: Path) -> None:
    shutil.copy(REPO / "zoos/bindings/echo_binding.py", tmp_path / "echo_binding.py")
    registry = BindingRegistry()
    registry.discover_folder(tmp_path)
    source = registry.get("echo")
    assert source is not None and source.cls is not None
    assert source.cls.__name__ == "EchoBinding"
    assert "folder" in source.origin


def test_package_plugin_with_relative_import(tmp_path: Path) -> None:
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "helpers.py").write_text("SUFFIX = '!'\n")
    (pkg / "__init__.py").write_text(
        (REPO / "zoos/bindings/echo_binding.py")
        .read_text()
        .replace('name: ClassVar[str] = "echo"', 'name: ClassVar[str] = "pkgecho"')
        + "\nfrom .helpers import SUFFIX\n"
    )
    registry = BindingRegistry()
    registry.discover_folder(tmp_path)
    source = registry.get("pkgecho")
    assert source is not None and source.cls is not None


def test_broken_plugins_are_recorded_not_raised(tmp_path: Path) -> None:
    (tmp_path / "syntax_broken.py").write_text("def oops(:\n")
    (tmp_path / "import_broken.py").write_text("import module_that_does_not_exist\n")
    (tmp_path / "empty_plugin.py").write_text("X = 1\n")
    registry = BindingRegistry()
    registry.discover_folder(tmp_path)
    errors = {s.name: s.error for s in registry.all() if s.cls is None}
    assert "SyntaxError" in errors["syntax_broken"]
    assert "module_that_does_not_exist" in errors["import_broken"]
    assert "no concrete Binding" in errors["empty_plugin"]


def test_only_the_configured_folder_is_scanned(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    shutil.copy(REPO / "zoos/bindings/echo_binding.py", tmp_path / "sub" / "echo_binding.py")
    registry = BindingRegistry()
    registry.discover_folder(tmp_path)
    assert registry.get("echo") is None


def test_package_re_exporting_its_binding_from_a_submodule(tmp_path: Path) -> None:
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .impl import Echo\n")
    (package / "impl.py").write_text(
        "from lollms_server.bindings.testing import ScriptedBinding\n"
        "class Echo(ScriptedBinding):\n    name = 'pkg_echo'\n"
    )
    registry = BindingRegistry()
    registry.discover_folder(tmp_path)
    source = registry.get("pkg_echo")
    assert source is not None and source.cls is not None


def test_plugins_failing_at_construction_disable_only_their_instance(
    tmp_path: Path, write_config
) -> None:
    from lollms_server.bindings.manager import BindingManager
    from lollms_server.config import load_config

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "fragile.py").write_text(
        "from lollms_server.bindings.testing import ScriptedBinding\n"
        "class Fragile(ScriptedBinding):\n    name = 'fragile'\n"
        "    def __init__(self, config, context):\n"
        "        raise RuntimeError('engine missing')\n"
        "class NoConfig(ScriptedBinding):\n    name = 'noconfig'\n    Config = dict\n"
    )
    settings = load_config(
        write_config(
            '[paths]\nbindings = "plugins"\n[bindings.f]\ntype = "fragile"\n'
            '[bindings.ok]\ntype = "scripted"\n'
        )
    )
    registry = BindingRegistry()
    registry.discover_entry_points()
    registry.discover_folder(tmp_path / "plugins")
    manager = BindingManager.from_settings(settings, registry)
    records = {r.name: r for r in manager.records()}
    assert records["f"].binding is None and "engine missing" in (records["f"].error or "")
    assert records["ok"].binding is not None
    errors = {s.name: s.error for s in registry.all() if s.error}
    assert "not a BindingConfig" in errors["noconfig"]
