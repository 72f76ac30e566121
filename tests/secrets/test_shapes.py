"""The token-shape pre-check (``analyzers/secrets/shapes.py``) never hides a secret a detector would find.

``find_secrets`` skips every detector when no shape matches, which is safe only while the shapes are
exactly the detectors' own patterns: these tests compare them with the installed detect-secrets and
with ``plugins``, check that every detector in use reports nothing its patterns do not match, and
check the saving itself (a string without a shape loads no detect-secrets, hence no ``requests``).
"""

from __future__ import annotations

import re
import subprocess
import sys

import hypothesis
import hypothesis.strategies as st
import pytest
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector

from mlgate.analyzers.secrets import detect, shapes
from mlgate.analyzers.secrets.plugins import ML_PLUGINS


def _patterns(compiled: object) -> list[tuple[str, int]]:
    return [(p.pattern, p.flags) for p in compiled]  # type: ignore[attr-defined]


def test_detect_secrets_shapes_are_the_installed_plugins_patterns() -> None:
    installed = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    used = [name for name in detect._PLUGIN_RULES if name in installed]
    assert sorted(shapes.DETECT_SECRETS_SHAPES) == sorted(used)
    for name in used:
        assert _patterns(shapes.compiled(shapes.DETECT_SECRETS_SHAPES[name])) == _patterns(installed[name].denylist)


def test_ml_plugins_are_compiled_from_their_shapes() -> None:
    assert {cls.__name__ for cls in ML_PLUGINS} == set(shapes.ML_SHAPES)
    for cls in ML_PLUGINS:
        assert _patterns(cls.denylist) == _patterns(shapes.compiled(shapes.ML_SHAPES[cls.__name__]))


def test_every_detector_reports_only_what_its_patterns_match() -> None:
    """Each detector is a regex detector whose ``analyze_string`` starts from its denylist matches (the
    JWT one filters them further), so no match of any shape means no detector reports anything."""
    for plugin in detect._detectors():
        assert isinstance(plugin, RegexBasedDetector), type(plugin).__name__
        overridden = type(plugin).analyze_string is not RegexBasedDetector.analyze_string
        assert not overridden or type(plugin).__name__ == "JwtTokenDetector", type(plugin).__name__


@pytest.mark.parametrize(
    "text",
    [
        "AKIA" + "QX7RT2ZW9LM4NB3V",
        "token=hf_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3h",
        "-----BEGIN RSA PRIVATE KEY-----",
        "postgresql://admin:Tr0ub4dor@db.internal/x",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
    ],
)
def test_a_secret_has_a_shape_and_is_still_found(text: str) -> None:
    assert shapes.has_secret_shape(text)
    assert detect.find_secrets(text)


def test_strings_without_a_shape_never_load_detect_secrets() -> None:
    code = (
        "import sys\n"
        "from mlgate.analyzers.secrets import find_secrets\n"
        "found = find_secrets('layer1.weight layer2.bias numpy.core.multiarray _reconstruct tok0 gelu')\n"
        "print(found, 'detect_secrets' in sys.modules, 'requests' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "False", "False"]


@pytest.mark.parametrize("pattern", sorted(shapes.NEEDS))
def test_every_match_of_a_shape_contains_what_it_needs(pattern: str) -> None:
    """``NEEDS`` is searched first and the shape skipped when it is absent: it must hold in every match."""
    flags = dict(shapes._ALL)[pattern]
    shape, need = re.compile(pattern, flags), re.compile(shapes.NEEDS[pattern], flags)

    @hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.from_regex(shape))
    def check(text: str) -> None:
        match = shape.search(text)
        assert match is not None
        assert need.search(match.group(0)) is not None, (pattern, match.group(0))

    check()


def test_needs_name_only_existing_shapes() -> None:
    assert set(shapes.NEEDS) <= {pattern for pattern, _ in shapes._ALL}


@pytest.mark.parametrize("pattern", sorted(shapes.FOLDED_NEEDS))
def test_every_latin1_match_of_a_case_insensitive_shape_holds_its_word(pattern: str) -> None:
    flags = dict(shapes._ALL)[pattern]
    shape, word = re.compile(pattern, flags), shapes.FOLDED_NEEDS[pattern]

    @hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.from_regex(shape))
    def check(text: str) -> None:
        match = shape.search(text)
        assert match is not None
        hypothesis.assume(shapes._lower_latin1(match.group(0)) is not None)
        assert word in match.group(0).lower(), (pattern, match.group(0))

    check()


def test_case_folds_beyond_latin1_still_run_the_shape() -> None:
    """re matches the Kelvin sign as ``k``: such text is not lower-cased, the shape itself decides."""
    key = "AWS_SECRET_\u212aEY = '" + "a" * 40 + "'"
    assert shapes.has_secret_shape(key)
    assert shapes.has_secret_shape("aws_secret_key = '" + "A" * 40 + "'")


@pytest.mark.parametrize("pattern", sorted(shapes.LITERAL_PREFIXES))
def test_every_match_of_a_shape_starts_with_its_literal_prefix(pattern: str) -> None:
    """A shape whose literal prefix is absent is skipped without compiling it: every match must hold it."""
    flags = dict(shapes._ALL)[pattern]
    shape, prefix = re.compile(pattern, flags), shapes.LITERAL_PREFIXES[pattern]

    @hypothesis.settings(max_examples=60, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.from_regex(shape))
    def check(text: str) -> None:
        match = shape.search(text)
        assert match is not None
        assert match.group(0).startswith(prefix), (pattern, match.group(0))

    check()


@pytest.mark.parametrize(
    ("pattern", "flags", "prefix"),
    [
        ("BEGIN RSA PRIVATE KEY", 0, "BEGIN RSA PRIVATE KEY"),
        ("ab?c", 0, "a"),  # the quantifier makes its character optional
        ("abc*", 0, "ab"),
        ("abc{2}", 0, "ab"),
        (r"SG\.x", 0, "SG"),
        ("abc|xyz", 0, ""),  # an alternative may start anywhere
        ("ab(c|d)", 0, ""),
        ("abc", re.IGNORECASE, ""),
        ("[ab]c", 0, ""),
    ],
)
def test_literal_prefix_keeps_only_what_every_match_starts_with(pattern: str, flags: int, prefix: str) -> None:
    assert shapes.literal_prefix(pattern, flags) == prefix
    for text in ("ac", "abbbc", "abcc", "SG.x", "xyz", "abd", "ABC", "bc"):
        match = re.match(pattern, text, flags)
        assert match is None or match.group(0).startswith(prefix)


def test_a_plain_binary_document_compiles_few_shapes() -> None:
    """The start-up saving: a stream of ordinary model strings skips most shapes by a substring test."""
    code = (
        "from mlgate.analyzers.secrets import shapes\n"
        "text = ''.join(f'tok{i}' for i in range(300)) + bytes(range(256)).decode('latin-1')\n"
        "assert not shapes.has_secret_shape(text)\n"
        "print(shapes._regex.cache_info().currsize, len(shapes._ALL))\n"
    )
    compiled, total = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split())  # fmt: skip
    assert compiled <= total // 3
