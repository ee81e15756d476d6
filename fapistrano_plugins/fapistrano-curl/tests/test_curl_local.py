"""fapistrano.curl without the fleet: a local target (connection: local) and the commands it builds."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from fapistrano_curl import command

INSTALL_SH = "#!/bin/sh\necho \"installed $FAP_RELEASE\" > INSTALLED\n"


def test_local_deploy_downloads_extracts_and_runs_postinstall(fap_local, fap_run, artifact_server, archive):
    artifact_server.files["/app.tgz"] = archive({"install.sh": INSTALL_SH, "web/index.html": "<h1>hi</h1>\n"})
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.tgz"),
                                "curl_extract_tgz": True, "curl_postinstall_script": "./install.sh"})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    current = fap_local.path / "releases" / fap_local.current()
    assert (current / "web" / "index.html").read_text() == "<h1>hi</h1>\n"
    assert (current / "INSTALLED").read_text() == f"installed {fap_local.current()}\n"
    assert sorted(p.name for p in current.iterdir()) == ["INSTALLED", "install.sh", "web"]


def test_dry_run_prints_the_download_without_credentials_and_fetches_nothing(fap_local, fap_run, artifact_server):
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.tgz", "ci", "dry-Secret-9"),
                                "curl_user": "ci:user-Secret-7", "curl_extract_tgz": True})

    result = fap_run(["deploy", "-s", "test", "--dry-run", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "curl --fail --location" in result.output and "tar -xzf" in result.output
    assert "dry-Secret-9" not in result.output and "user-Secret-7" not in result.output
    assert artifact_server.requests == []
    assert fap_local.current() is None


PROBLEMS = [
    ({"curl_user": "ci-without-password"}, "curl_user: expected user:password"),
    ({"curl_extract_tar": True, "curl_extract_tgz": True}, "curl_extract_tar and curl_extract_tgz are both true"),
    ({"curl_user": "ci:pw-123", "curl_options": "--retry 2 -sSv"}, "curl_options: -sSv would print the credentials"),
    ({"curl_options": ["--trace-ascii", "/dev/stderr"], "curl_url": "http://ci:pw-123@h/a"}, "curl_options: --trace-ascii would print"),
    ({"curl_options": ["--user", "ci:pw-123"]}, "curl_options: --user would show the credentials in the process list"),
    ({"curl_options": "--header 'X-Build: 1"}, "curl_options: cannot split into arguments"),
    ({"curl_url": ""}, "curl_url is not set"),
]


@pytest.mark.parametrize(("settings", "expected"), PROBLEMS)
def test_settings_that_cannot_work_are_named(settings, expected):
    found = command.problems({"curl_url": "http://h/a.tgz", "curl_options": [], **settings})
    assert len(found) == 1 and found[0].startswith(expected), found
    assert "pw-123" not in found[0]


def test_verbose_curl_is_fine_without_credentials():
    assert command.problems({"curl_url": "http://h/a.tgz", "curl_options": ["-v"]}) == []


@pytest.mark.parametrize(("settings", "expected"), [PROBLEMS[0], PROBLEMS[2]])
def test_settings_that_cannot_work_fail_the_deploy_before_any_download(fap_local, fap_run, artifact_server, settings, expected):
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.tgz"), **settings})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert any("localhost" in line and expected in line for line in result.output.splitlines()), result.output
    assert "pw-123" not in result.output
    assert artifact_server.requests == []
    assert fap_local.releases() == []


def test_curl_config_carries_awkward_credentials_to_the_server_intact(tmp_path, artifact_server):
    password = 'p"a\\ss w:rd\t$(x)`y`'
    artifact_server.credentials = ("ci user", password)
    artifact_server.files["/a%20b.bin"] = b"payload"
    config = {"curl_url": artifact_server.url("/a%20b.bin"), "curl_user": f"ci user:{password}", "curl_options": []}
    output = str(tmp_path / "out.bin")

    ran = subprocess.run(["sh", "-c", command.download_command(config, output)], input=command.curl_config(config),
                         capture_output=True, text=True, check=False)

    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "out.bin").read_bytes() == b"payload"
    assert [r.credentials for r in artifact_server.requests] == [f"ci user:{password}"]
    assert password not in command.download_command(config, output)


@pytest.mark.parametrize(("url", "name"), [
    ("https://ci.example.org/builds/app-1.4.tar.gz", "app-1.4.tar.gz"),
    ("https://ci.example.org/builds/app.tgz?token=abc#top", "app.tgz"),
    ("https://user:pw@ci.example.org/my%20app.tar", "my app.tar"),
    ("https://ci.example.org/builds/", "artifact"),
    ("https://ci.example.org", "artifact"),
    ("https://ci.example.org/..", "artifact"),
])
def test_default_output_is_the_last_part_of_the_url_path(url, name):
    assert command.output_name(url) == name
    assert command.output_path({"curl_url": url, "curl_output": ""}, "/srv/app/releases/1") == f"/srv/app/releases/1/{name}"


def test_curl_output_is_relative_to_the_release_unless_absolute():
    release = "/srv/app/releases/1"
    assert command.output_path({"curl_url": "http://h/x", "curl_output": "bin/tool"}, release) == f"{release}/bin/tool"
    assert command.output_path({"curl_url": "http://h/x", "curl_output": "/tmp/x.tgz"}, release) == "/tmp/x.tgz"


@pytest.mark.parametrize(("options", "words"), [
    ([], []),
    ("--retry 3 --max-time 600", ["--retry", "3", "--max-time", "600"]),
    (["--retry", "3"], ["--retry", "3"]),
    (["--header 'X-Build: 42 final'", "-k"], ["--header", "X-Build: 42 final", "-k"]),
])
def test_curl_options_items_split_like_a_shell_line(options, words):
    assert command.split_options(options) == words
    line = command.download_command({"curl_options": options}, "/r/out")
    assert shlex.split(line)[-len(words) - 2:] == [*words, "--config", "-"]


def test_masked_curl_options_reach_curl_on_stdin_never_its_command_line(fap_local, fap_run, artifact_server):
    artifact_server.files["/app.bin"] = b"payload"
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.bin"),
                                "mask": ["curl_options"],
                                "curl_options": ["--retry 1", "-H 'Authorization: Bearer Zq9hdr-tok'", "--user-agent 'fap test/1'",
                                                 "--compressed"]})

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert "Zq9hdr" not in result.output
    [request] = artifact_server.requests
    assert request.headers["Authorization"] == "Bearer Zq9hdr-tok"
    assert request.headers["User-Agent"] == "fap test/1"
    assert request.curl_processes, "no curl process was seen during the request"
    assert not [line for line in request.all_command_lines if "Zq9hdr" in line]


def test_a_password_holding_at_reaches_the_server_and_is_never_shown(fap_local, fap_run, artifact_server):
    password = "Zq9c@Xw4t-@Yv8p"
    artifact_server.credentials = ("ci", password)
    artifact_server.files["/app.bin"] = b"payload"
    for extra in ({"curl_url": artifact_server.url("/app.bin"), "curl_user": f"ci:{password}"},
                  {"curl_url": artifact_server.url("/app.bin", "ci", password)}):
        fap_local.write_deployfile({"plugins": ["fapistrano.curl"], **extra})

        result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root)

        assert result.exit_code == 0, result.output
        assert "Zq9" not in result.output and "Xw4" not in result.output and "Yv8" not in result.output, result.output
    assert [r.credentials for r in artifact_server.requests] == [f"ci:{password}"] * 2
    assert not [line for r in artifact_server.requests for line in r.all_command_lines if "Xw4" in line]


def test_a_reference_inside_quotes_of_the_postinstall_script_is_refused(fap_local, fap_run, artifact_server):
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.bin"), "note": "",
                                "curl_postinstall_script": 'echo "deployed %(note)s"'})

    result = fap_run(["deploy", "-s", "test", "--note", "$(touch /tmp/fap-pwned-postinstall)"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert "curl_postinstall_script: %(note)s is inside double quotes" in result.stderr, result.stderr
    assert artifact_server.requests == [] and fap_local.releases() == []
