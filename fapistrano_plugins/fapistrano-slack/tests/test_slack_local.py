"""fapistrano.slack on a local target (connection: local), posting to a real webhook server on loopback."""

from __future__ import annotations

import getpass
import json

import pytest

FAILING = {"linked_files": ["config/settings.ini"]}  # no shared/config/settings.ini: the deploy fails in starting


def deploy(fap_local, fap_run, settings, *args, timeout=120):
    fap_local.write_deployfile({"app_name": "shop", "plugins": ["fapistrano.slack"], **settings})
    return fap_run(["deploy", "-s", "test", *args], cwd=fap_local.root, timeout=timeout)


def warnings(result) -> list[str]:
    return [line for line in result.output.splitlines() if "fapistrano.slack" in line and "warning" in line]


def test_a_deploy_posts_one_message_when_it_starts_and_one_when_it_ends(fap_local, fap_run, webhook):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url(), "slack_channel": "#deploys"})

    assert result.exit_code == 0, result.output
    release = fap_local.current()
    who = getpass.getuser()
    assert [post.path for post in webhook.posts] == [f"/services/T0001/B0002/{webhook.token}"] * 2
    assert all(post.content_type == "application/json" for post in webhook.posts)
    assert all(post.body["channel"] == "#deploys" for post in webhook.posts)
    start, end = webhook.texts
    assert start.splitlines() == [f"shop: deploy of release {release} to test/web started by {who}", "hosts: localhost"]
    first, *rest = end.splitlines()
    assert first.startswith(f"shop: deploy of release {release} to test/web by {who}: ok in ") and first.endswith(" s")
    assert rest == ["hosts: localhost"]
    assert warnings(result) == []


def test_without_a_channel_the_message_is_only_text(fap_local, fap_run, webhook):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()})

    assert result.exit_code == 0, result.output
    assert [sorted(post.body) for post in webhook.posts] == [["text"], ["text"]]


def test_a_failed_deploy_posts_failed_with_the_first_error(fap_local, fap_run, webhook):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url(), **FAILING})

    assert result.exit_code == 1, result.output
    assert len(webhook.posts) == 2
    end = webhook.texts[1].splitlines()
    assert ": failed in " in end[0]
    assert end[-1].startswith("error: localhost: starting: core.dirs: missing linked file: ")
    assert end[-1].endswith("shared/config/settings.ini (command exited 1)")


def test_a_rollback_posts_the_release_it_returns_to(fap_local, fap_run, webhook):
    assert deploy(fap_local, fap_run, {}).exit_code == 0
    first = fap_local.current()
    assert deploy(fap_local, fap_run, {}).exit_code == 0
    fap_local.write_deployfile({"app_name": "shop", "plugins": ["fapistrano.slack"], "slack_webhook": webhook.url()})

    result = fap_run(["rollback", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert fap_local.current() == first
    assert webhook.texts[0].startswith(f"shop: rollback to release {first} to test/web started by ")
    assert ": ok in " in webhook.texts[1]


def test_nothing_is_posted_under_dry_run(fap_local, fap_run, webhook):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()}, "--dry-run", "-v")

    assert result.exit_code == 0, result.output
    assert webhook.posts == []
    assert "not posting the start message under --dry-run" in result.output


def test_no_webhook_no_post_and_no_warning(fap_local, fap_run, webhook):
    result = deploy(fap_local, fap_run, {})

    assert result.exit_code == 0, result.output
    assert webhook.posts == [] and warnings(result) == []


def test_a_dead_webhook_is_one_warning_per_message_and_the_deploy_succeeds(fap_local, fap_run, dead_url):
    result = deploy(fap_local, fap_run, {"slack_webhook": dead_url})

    assert result.exit_code == 0, result.output
    assert fap_local.current() is not None
    port = dead_url.split(":")[2].split("/")[0]
    assert warnings(result) == [
        f"run_starting | warning: fapistrano.slack: start message not posted to 127.0.0.1:{port}: cannot reach the webhook: connection refused",
        f"run_finished | warning: fapistrano.slack: end message not posted to 127.0.0.1:{port}: cannot reach the webhook: connection refused",
    ]
    assert "Traceback" not in result.output


def test_a_webhook_answering_an_error_is_a_warning(fap_local, fap_run, webhook):
    webhook.answer = 403

    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()})

    assert result.exit_code == 0, result.output
    assert len(webhook.posts) == 2
    assert [line.split("warning: ", 1)[1] for line in warnings(result)] == [
        f"fapistrano.slack: {which} message not posted to 127.0.0.1:{webhook.port}: the webhook answered HTTP 403 Forbidden"
        for which in ("start", "end")
    ]


def test_a_failed_deploy_keeps_its_exit_code_when_the_webhook_is_dead(fap_local, fap_run, dead_url):
    result = deploy(fap_local, fap_run, {"slack_webhook": dead_url, **FAILING})

    assert result.exit_code == 1, result.output
    assert len(warnings(result)) == 2


@pytest.mark.parametrize("answer", ["silent", "trickle"])
def test_a_webhook_that_does_not_answer_costs_at_most_slack_timeout_per_message(fap_local, fap_run, webhook, answer):
    baseline = deploy(fap_local, fap_run, {})
    assert baseline.exit_code == 0
    webhook.answer = answer

    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url(), "slack_timeout": 1}, timeout=60)

    assert result.exit_code == 0, result.output
    assert len(webhook.posts) == 2
    assert [line.rsplit(": ", 1)[1] for line in warnings(result)] == ["no answer within 1 s"] * 2
    # two messages of at most 1 s each; the server would hold either one forever
    assert result.duration < baseline.duration + 2 + 1.5, (result.duration, baseline.duration)


def test_the_webhook_url_is_masked_in_output_log_json_and_config(fap_local, fap_run, webhook, tmp_path):
    webhook.answer = 500
    log = tmp_path / "log.jsonl"

    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()}, "-v", "--log-json", str(log))
    shown = fap_run(["config", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert len(warnings(result)) == 2 and len(webhook.posts) == 2
    assert webhook.token not in result.stdout and webhook.token not in result.stderr
    assert webhook.token not in log.read_text()
    assert [json.loads(line) for line in log.read_text().splitlines()]  # the log was written
    assert shown.exit_code == 0 and webhook.token not in shown.output
    assert any(line.split()[:2] == ["slack_webhook", "***"] for line in shown.stdout.splitlines()), shown.stdout


LEAKY_HOOKS = """\
from fapistrano import FapError, hookimpl

@hookimpl
def fap_deploy_updating(ctx):
    # a careless project hook: its error quotes a secret setting
    raise FapError(f"cannot log in to the registry with {ctx.config['slack_webhook']}")
"""


def test_secrets_in_the_error_are_masked_in_the_posted_message(fap_local, fap_run, webhook):
    (fap_local.root / "leaky_hooks.py").write_text(LEAKY_HOOKS)
    fap_local.write_deployfile({"app_name": "shop", "plugins": ["fapistrano.slack", "leaky_hooks"], "slack_webhook": webhook.url()})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 1, result.output
    end = webhook.texts[1]
    assert "error: localhost: updating: leaky_hooks: cannot log in to the registry with ***" in end, end
    assert webhook.token not in end
    assert webhook.token not in result.output


def test_a_webhook_read_from_the_environment_for_one_stage_role_posts_and_stays_masked(fap_local, fap_run, webhook):
    fap_local.write_deployfile({"app_name": "shop", "plugins": ["fapistrano.slack"],
                                "stage_role_configs": {"test": {"web": {"slack_webhook": "%(env:SLACK_WEBHOOK)s"}}}})

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root, env={"SLACK_WEBHOOK": webhook.url()})

    assert result.exit_code == 0, result.output
    assert len(webhook.posts) == 2 and webhook.posts[0].path.endswith(webhook.token)
    assert webhook.token not in result.output


#: Puts a "revision" in each release and answers fap_release_revision, as the git plugin does.
REVISIONS = '''\
from fapistrano import hookimpl


@hookimpl
def fap_deploy_updating(ctx):
    ctx.run("printf %s " + ctx.config["next_revision"] + " > REVISION", cwd=ctx.release_path)


@hookimpl
def fap_release_revision(ctx, release):
    return ctx.run("cat REVISION 2>/dev/null || true", cwd=ctx.config["releases_path"] + "/" + release, readonly=True) or None
'''


def test_the_end_message_names_the_revision_before_and_after(fap_local, fap_run, webhook):
    (fap_local.root / "revisions.py").write_text(REVISIONS)

    def deploy_revision(sha):
        fap_local.write_deployfile({"app_name": "shop", "plugins": ["revisions", "fapistrano.slack"],
                                    "slack_webhook": webhook.url(), "next_revision": sha})
        return fap_run(["deploy", "-s", "test", "--next-revision", sha], cwd=fap_local.root)

    first = deploy_revision("1111111aaaa")
    assert first.exit_code == 0, first.output
    assert webhook.texts[1].splitlines()[-1] == "revision: ? -> 1111111"  # a first deploy: nothing before it

    second = deploy_revision("2222222bbbb")

    assert second.exit_code == 0, second.output
    assert webhook.texts[3].splitlines()[-1] == "revision: 1111111 -> 2222222"
    assert "revision" not in webhook.texts[2]  # the start message: the new code is not there yet


@pytest.mark.parametrize(("given", "said"), [
    ("1e308", "slack_timeout 1e+308 s is more than 300 s; using 300"),
    ("0", "slack_timeout must be a positive number of seconds, got 0; using 5"),
    ("-1", "slack_timeout must be a positive number of seconds, got -1; using 5"),
])
def test_a_slack_timeout_out_of_bounds_is_one_warning_and_never_fails_the_run(fap_local, fap_run, webhook, given, said):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()}, "--slack-timeout", given)

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert len(webhook.posts) == 2
    assert [line.split("warning: ", 1)[1] for line in warnings(result)] == [f"fapistrano.slack: {said}"]


@pytest.mark.parametrize("given", ["soon", "inf", "nan"])
def test_a_slack_timeout_that_is_not_a_number_is_bad_input(fap_local, fap_run, webhook, given):
    result = deploy(fap_local, fap_run, {"slack_webhook": webhook.url()}, "--slack-timeout", given)

    assert result.exit_code == 2, result.output
    assert f"slack_timeout: expected a number, got {given!r}" in result.output and "Traceback" not in result.output
    assert webhook.posts == [] and fap_local.releases() == []
