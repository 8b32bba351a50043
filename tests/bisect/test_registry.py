"""Reading pip's registry configuration for uv, from pip's own `pip config list`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelseal.bisect.registry import PackageRegistry, parse_pip_config, pip_registry

LISTING = """\
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.extra-index-url='file:///opt/a/simple https://user:token@mirror.example/simple'
global.find-links='/opt/global-wheels'
global.index-url='https://global.example/simple'
install.index-url='https://install.example/simple'
:env:.find-links='/opt/env-wheels /opt/more-wheels'
global.constraint='/etc/pip/constraints.txt'
"""


def test_environment_beats_install_section_beats_global() -> None:
    registry = parse_pip_config(LISTING)
    assert registry.index_url == "https://install.example/simple"
    assert registry.find_links == ("/opt/env-wheels", "/opt/more-wheels")
    assert registry.extra_index_urls == (
        "file:///opt/a/simple",
        "https://user:token@mirror.example/simple",
    )
    assert registry.constraints == ("/etc/pip/constraints.txt",)


def test_uv_gets_every_location_and_reports_hide_credentials() -> None:
    arguments = parse_pip_config(LISTING).uv_arguments()
    assert arguments[:2] == ["--index-strategy", "unsafe-best-match"]
    pairs = list(zip(arguments[2::2], arguments[3::2], strict=True))
    assert ("--index-url", "https://install.example/simple") in pairs
    assert ("--extra-index-url", "https://user:token@mirror.example/simple") in pairs
    assert ("--find-links", "/opt/more-wheels") in pairs
    assert ("--constraints", "/etc/pip/constraints.txt") in pairs
    described = parse_pip_config(LISTING).described()
    assert "https://***@mirror.example/simple" in described
    assert not any("token" in part for part in described)


def test_nothing_configured_leaves_uv_its_defaults() -> None:
    assert parse_pip_config("") == PackageRegistry()
    assert PackageRegistry().uv_arguments() == ["--index-strategy", "unsafe-best-match"]


def test_the_real_pip_reports_its_configuration_file_and_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nextra-index-url = file:///srv/one/simple file:///srv/two/simple\n"
        "find-links = /srv/file-wheels\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/env-wheels")
    registry = pip_registry(sys.executable)
    assert registry.extra_index_urls == ("file:///srv/one/simple", "file:///srv/two/simple")
    assert registry.find_links == ("/srv/env-wheels",)
