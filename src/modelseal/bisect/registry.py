"""The package registry this machine is configured for, read from pip and handed to uv.

uv does not read pip's configuration, so a machine set up for pip (an internal index, a
local wheel folder, a constraints file) would build bisect's environments from somewhere
else. ``pip config list`` prints what pip would use: its files merged with ``PIP_*``
variables (shown as ``:env:.KEY``), which win over the ``install`` section, which wins over
``global``. uv's own ``UV_*`` variables still apply on top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

SCOPES = (":env:", "install", "global")
"""pip's precedence: environment variables, then the install command's section, then global."""


@dataclass(frozen=True)
class PackageRegistry:
    """Where packages come from: pip's index, extra indexes, wheel folders and constraints."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()

    def uv_arguments(self) -> list[str]:
        """``uv pip install`` options for this registry.

        pip picks the best version across every index; uv by default only looks at the
        first index that has a package, which would hide versions a local mirror lacks.
        """
        arguments = ["--index-strategy", "unsafe-best-match"]
        if self.index_url:
            arguments += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            arguments += ["--extra-index-url", url]
        for location in self.find_links:
            arguments += ["--find-links", location]
        for path in self.constraints:
            arguments += ["--constraints", path]
        return arguments

    def described(self) -> list[str]:
        """The same options with any credentials in URLs masked, for reports and logs."""
        return [_without_credentials(argument) for argument in self.uv_arguments()]


def pip_registry(python: str = sys.executable) -> PackageRegistry:
    """The registry pip (run by ``python``) is configured for; empty if pip cannot say."""
    try:
        result = subprocess.run(
            [python, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return PackageRegistry()
    if result.returncode != 0:
        return PackageRegistry()
    return parse_pip_config(result.stdout)


def parse_pip_config(listing: str) -> PackageRegistry:
    """``pip config list`` output (``scope.key='value'`` lines) -> the registry it names."""
    values: dict[str, str] = {}
    for line in listing.splitlines():
        key, equals, raw = line.partition("=")
        if not equals:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        values[key.strip()] = str(value)

    def option(name: str) -> list[str]:
        for scope in SCOPES:
            if f"{scope}.{name}" in values:
                return values[f"{scope}.{name}"].split()
        return []

    index = option("index-url")
    return PackageRegistry(
        index_url=index[0] if index else None,
        extra_index_urls=tuple(option("extra-index-url")),
        find_links=tuple(option("find-links")),
        constraints=tuple(option("constraint")),
    )


def _without_credentials(text: str) -> str:
    parts = urlsplit(text)
    if not parts.scheme or "@" not in parts.netloc:
        return text
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))
