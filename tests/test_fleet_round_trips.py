"""Commands sent with a host's next round trip (``ctx.run_later``): their failures still fail the run, in their phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

WWW_APP = "/home/deploy/www/app"
HOSTS = ("host1", "host2", "host3")


def test_a_cleanup_failing_with_the_unlock_fails_the_run_in_finishing_and_releases_the_lock(
    fap_fleet: Any, fap_run: Any, released: Any, tmp_path: Path
) -> None:
    fap_fleet.write_deployfile(tmp_path, {"keep_releases": 1})
    first = released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    released(fap_run(["deploy", "-s", "test", "-q"], cwd=tmp_path))
    # Something in the oldest release of host2 the deploy user may not remove.
    fap_fleet.in_host("host2", ["sh", "-c", f"mkdir {WWW_APP}/releases/{first}/root-only && touch {WWW_APP}/releases/{first}/root-only/f"
                                             f" && chmod 555 {WWW_APP}/releases/{first}/root-only"])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert "host2: finishing: core.cleanup:" in result.output
    assert "Permission denied" in result.output
    third = max(fap_fleet.releases("host1"))
    for host in HOSTS:
        assert fap_fleet.current(host) == third, host  # the switch stands: the failure came after it
        assert not fap_fleet.locked(host), host
    assert first not in fap_fleet.releases("host1") and first in fap_fleet.releases("host2")


REMOTE_LOOKER = '''
from fapistrano import hookimpl


@hookimpl
def fap_deploy_started(ctx):
    # A power user's plugin: it looks at the host through plumbum, not ctx.run.
    release = ctx.remote.path(ctx.release_path)
    ctx.log("release directory there: %s" % release.is_dir())
'''


def test_a_plugin_reading_the_host_through_plumbum_sees_what_earlier_phases_sent_later(
    fap_fleet: Any, fap_run: Any, tmp_path: Path
) -> None:
    (tmp_path / "remote_looker.py").write_text(REMOTE_LOOKER)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["remote_looker"]})

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    assert result.output.count("release directory there: True") == len(HOSTS), result.output
