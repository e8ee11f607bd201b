"""The harness's case selection: which include/exclude globs reach which target."""

from __future__ import annotations

import harness


def test_plain_globs_apply_to_every_target() -> None:
    for mode, face in harness.targets("wsjet"):
        assert harness.globs_for_target(["12.*", "13.*"], mode, face) == ["12.*", "13.*"]


def test_a_mode_prefix_applies_to_that_mode_only() -> None:
    globs = ["1.*", "client:9.7.*"]
    assert harness.globs_for_target(globs, "client", "coroutine") == ["1.*", "9.7.*"]
    assert harness.globs_for_target(globs, "server", "coroutine") == ["1.*"]
    assert harness.globs_for_target(globs, "server", "callback") == ["1.*"]


def test_a_target_prefix_applies_to_that_target_only() -> None:
    globs = harness.parse_globs("server-callback:12.*, server-callback:13.*")
    assert harness.globs_for_target(globs, "server", "callback") == ["12.*", "13.*"]
    assert harness.globs_for_target(globs, "server", "coroutine") == []
    assert harness.globs_for_target(globs, "client", "coroutine") == []
