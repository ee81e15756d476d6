"""How the git plugin reads ``git ls-remote``: the commit a name resolves to, as ``git fetch`` would resolve it."""

from __future__ import annotations

import pytest

from fapistrano import ConfigError

from fapistrano_git import fap_source_promote, resolve_ref

BRANCH = "1" * 40
TAG_OBJECT = "2" * 40
TAGGED = "3" * 40
OTHER = "4" * 40


def test_a_branch_resolves_to_its_commit():
    assert resolve_ref(f"{BRANCH}\trefs/heads/main\n{OTHER}\trefs/heads/feature/main\n", "main") == BRANCH


def test_an_annotated_tag_resolves_to_the_commit_it_points_to():
    assert resolve_ref(f"{TAG_OBJECT}\trefs/tags/v1\n{TAGGED}\trefs/tags/v1^{{}}\n", "v1") == TAGGED


def test_a_tag_wins_over_a_branch_of_the_same_name_as_git_fetch_decides():
    output = f"{BRANCH}\trefs/heads/v1\n{TAG_OBJECT}\trefs/tags/v1\n{TAGGED}\trefs/tags/v1^{{}}\n"
    assert resolve_ref(output, "v1") == TAGGED


def test_an_abbreviated_sha_is_found_in_the_mirror_only():
    assert resolve_ref(f"mirror={OTHER}\n", "4444444") == OTHER
    assert resolve_ref("", "nothing") is None


def test_promote_pins_branch_to_the_commit():
    assert fap_source_promote(revision=TAGGED, stage="production", role="web", config={}) == {"branch": TAGGED}
    with pytest.raises(ConfigError, match="the git plugin ships a commit sha"):
        fap_source_promote(revision="not a sha", stage="production", role="web", config={})
