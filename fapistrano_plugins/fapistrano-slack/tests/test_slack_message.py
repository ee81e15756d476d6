"""The messages' wording for outcomes a local deploy does not reach, and the webhook client on its own."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from fapistrano import RunOutcome, RunTarget

from fapistrano_slack import message
from fapistrano_slack import webhook as client


def a_run(**fields):
    hosts = fields.pop("hosts", ("web1", "web2"))
    base = {"command": "deploy", "release": "261129-101500", "hosts": hosts, "config": {"app_name": "shop"},
            "targets": (RunTarget("production", "web", hosts, {}),), "ok": False, "outcome": None, "error": None}
    return SimpleNamespace(**{**base, **fields})


def test_switched_back_after_a_failed_health_check_says_so_with_the_first_error():
    run = a_run(outcome=RunOutcome.SWITCHED_BACK,
                error="web2: healthcheck: curl -fsS http://127.0.0.1:8000/up failed (exit 22)\nweb1: switched back")

    text = message.finished(run, "alice", 42.0)

    assert text.splitlines() == [
        "shop: deploy of release 261129-101500 to production/web by alice: "
        "failed and switched back in 42.0 s: every host is on its previous release again",
        "hosts: web1, web2 (2)",
        "error: web2: healthcheck: curl -fsS http://127.0.0.1:8000/up failed (exit 22)",
    ]


def test_partial_names_max_fail():
    run = a_run(outcome=RunOutcome.PARTIAL, error="web2: connecting: ssh: connection refused")

    assert ": partial in 1 min 30 s: done except on the hosts dropped under --max-fail\n" in message.finished(run, "bob", 90.2)


def test_a_restart_of_many_hosts_over_two_roles_counts_the_hosts_left_out():
    hosts = tuple(f"web{n}" for n in range(1, 13))
    run = a_run(command="restart", hosts=hosts, ok=True, outcome=RunOutcome.OK,
                targets=(RunTarget("production", "web", hosts[:6], {}), RunTarget("production", "worker", hosts[6:], {})))

    first, second = message.finished(run, "carol", 3.25).splitlines()

    assert first == "shop: restart of release 261129-101500 to production/web, production/worker by carol: ok in 3.2 s"
    assert second == "hosts: web1, web2, web3, web4, web5, web6, web7, web8, web9, web10 and 2 more (12)"


@pytest.mark.parametrize("url", ["ftp://hooks.example.org/x", "hooks.slack.com/services/x", "http:///x"])
def test_a_url_that_is_not_http_is_refused_without_being_quoted(url):
    problem = client.post(url, {"text": "hi"}, 1)

    assert problem == "slack_webhook is not an http:// or https:// URL"


def test_post_returns_within_the_timeout_when_the_server_never_answers(webhook):
    webhook.answer = "silent"
    started = time.monotonic()

    problem = client.post(webhook.url(), {"text": "hi"}, 0.5)

    assert problem == "no answer within 0.5 s"
    assert time.monotonic() - started < 1.5
    assert [post.text for post in webhook.posts] == ["hi"]


def test_where_names_the_host_and_port_only():
    assert client.where("https://user:pw@hooks.slack.com/services/T0/B0/abc") == "hooks.slack.com"
    assert client.where("http://127.0.0.1:8065/hooks/abc") == "127.0.0.1:8065"
