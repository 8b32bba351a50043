"""The serving lock is the dependency closure from installed metadata."""

from __future__ import annotations

from importlib import metadata

import pytest
from packaging.requirements import Requirement

from modelseal import UsageError
from modelseal.environment.lock import (
    dependency_closure,
    lock_lines,
    parse_lock,
    pins_in_text,
    render_lock,
)


def test_scikit_learn_closure_holds_its_dependencies_and_no_tools() -> None:
    closure = dependency_closure(["scikit-learn"])
    direct = {Requirement(text).name for text in metadata.requires("scikit-learn") or []
              if "extra ==" not in text}  # fmt: skip
    assert {"scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl"} <= set(closure)
    assert direct <= set(closure)
    assert all(closure[name] == metadata.version(name) for name in closure)
    assert not {"pytest", "ruff", "mypy", "pydantic", "torch", "mlflow"} & set(closure)


def test_extras_are_followed_only_when_asked() -> None:
    plain = dependency_closure(["uvicorn"])
    with_extra = dependency_closure(["uvicorn[standard]"])
    assert "uvloop" not in plain and "httptools" not in plain
    assert {"uvloop", "httptools"} <= set(with_extra)


def test_a_missing_root_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'not-a-real-package', which is not installed"):
        dependency_closure(["not-a-real-package"])


def test_render_pins_each_line_under_a_comment_header() -> None:
    text = render_lock({"numpy": "2.4.6", "scipy": "1.17.1"}, "made for\na test")
    assert text.splitlines() == ["# made for", "# a test", "numpy==2.4.6", "scipy==1.17.1"]


def test_rendered_lock_text_parses_back_to_the_same_pins() -> None:
    closure = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "torch": "2.13.0+cpu"}
    text = render_lock(closure, "made for # a test\nsecond line")
    assert lock_lines(text) == ["numpy==2.4.6", "scikit-learn==1.9.1", "torch==2.13.0+cpu"]
    assert parse_lock(lock_lines(text)) == closure
    assert parse_lock(text.splitlines()) == closure


def test_lock_lines_drop_comments_and_blank_lines_only() -> None:
    text = "# header\n\nnumpy==2.4.6  # pinned\n   \nscipy==1.17.1\n"
    assert lock_lines(text) == ["numpy==2.4.6", "scipy==1.17.1"]


def test_pins_in_a_label_in_any_separator_are_normalized() -> None:
    text = "NumPy==2.4.6,scikit_learn==1.9.1\nscipy==1.17.1; x torch>=2 --index-url"
    assert pins_in_text(text) == {"numpy": "2.4.6", "scikit-learn": "1.9.1", "scipy": "1.17.1"}


def test_a_lock_renders_pip_options_between_its_header_and_its_pins() -> None:
    text = render_lock({"torch": "2.13.0+cpu"}, "made for a test", ["--extra-index-url U"])
    assert text.splitlines() == ["# made for a test", "--extra-index-url U", "torch==2.13.0+cpu"]
