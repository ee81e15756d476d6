"""fapistrano.curl on the real SSH fleet, downloading from a real HTTP server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.fleet

INSTALL_SH = """\
#!/bin/sh
set -e
echo "installing $FAP_RELEASE on $FAP_HOST"
printf '%s %s\\n' "$FAP_RELEASE" "$FAP_HOST" > INSTALLED
# linked from shared/ by the core before the script runs
cp config/settings.ini SEEN_SETTINGS
"""

APP_FILES = {
    "app/__init__.py": "",
    "app/main.py": "print('hello from the artifact')\n",
    "install.sh": INSTALL_SH,
}


def write_shared_settings(fleet, app_name: str = "app") -> None:
    """shared/config/settings.ini on every host, as an operator provisions it (owned by deploy)."""
    for name in fleet.hosts:
        result = fleet.in_host(name, ["sh", "-c", f"mkdir -p /home/deploy/www/{app_name}/shared/config && "
                                      f"echo 'host = {name}' > /home/deploy/www/{app_name}/shared/config/settings.ini"],
                               user="deploy")
        assert result.returncode == 0, result.stderr


def settings(url: str, **extra: object) -> dict[str, object]:
    return {"plugins": ["fapistrano.curl"], "curl_url": url, "curl_extract_tgz": True,
            "curl_postinstall_script": "./install.sh", "linked_files": ["config/settings.ini"], **extra}


def deploy(fleet, fap_run, directory: Path, extra: dict[str, object], *args: str):
    fleet.write_deployfile(directory, extra)
    return fap_run(["deploy", "-s", "test", *args], cwd=directory)


def test_deploy_extracts_the_artifact_and_runs_postinstall_on_every_host(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    artifact_server.files["/builds/app-1.0.tar.gz"] = archive(APP_FILES)
    write_shared_settings(fap_fleet)

    result = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/builds/app-1.0.tar.gz")))

    assert result.exit_code == 0, result.output
    releases = {fap_fleet.current(host) for host in fap_fleet.hosts}
    assert len(releases) == 1 and None not in releases
    release = releases.pop()
    for host in fap_fleet.hosts:
        current = fap_fleet.current_dir(host)
        assert current.name == release
        assert (current / "app" / "main.py").read_text() == "print('hello from the artifact')\n"
        assert (current / "INSTALLED").read_text() == f"{release} {host}\n"
        assert (current / "SEEN_SETTINGS").read_text() == f"host = {host}\n"
        # the archive itself is not kept in the release once extracted
        assert not (current / "app-1.0.tar.gz").exists()
    # curl_postinstall_output is true by default: the script's output is shown per host
    for host in fap_fleet.hosts:
        assert f"installing {release} on {host}" in result.stdout
    assert len([r for r in artifact_server.requests if r.status == 200]) == len(fap_fleet.hosts)


def test_plain_download_is_saved_under_curl_output_or_the_url_basename(fap_fleet, fap_run, tmp_path, artifact_server):
    payload = bytes(range(256)) * 64
    artifact_server.files["/dist/tool.bin"] = payload

    result = deploy(fap_fleet, fap_run, tmp_path, {"plugins": ["fapistrano.curl"],
                                                    "curl_url": artifact_server.url("/dist/tool.bin?build=7")})
    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        assert (fap_fleet.current_dir(host) / "tool.bin").read_bytes() == payload

    result = deploy(fap_fleet, fap_run, tmp_path, {"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/dist/tool.bin"),
                                                    "curl_output": "bin/my tool"})
    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        assert (fap_fleet.current_dir(host) / "bin" / "my tool").read_bytes() == payload
        assert not (fap_fleet.current_dir(host) / "tool.bin").exists()


def test_uncompressed_tar_is_extracted_and_postinstall_output_can_be_hidden(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    artifact_server.files["/app.tar"] = archive({**APP_FILES, "static/site.css": "body {}\n"}, gzip=False)
    write_shared_settings(fap_fleet)

    result = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/app.tar"), curl_extract_tgz=False, curl_extract_tar=True,
                                                           curl_postinstall_output=False))

    assert result.exit_code == 0, result.output
    for host in fap_fleet.hosts:
        current = fap_fleet.current_dir(host)
        assert (current / "static" / "site.css").read_text() == "body {}\n"
        assert not (current / "app.tar").exists()
        assert (current / "INSTALLED").read_text() == f"{current.name} {host}\n"
    # the script ran, but curl_postinstall_output: false kept its output off the screen
    assert "installing" not in result.output


def test_http_404_fails_the_deploy_names_host_and_masked_url_and_leaves_current(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    artifact_server.credentials = ("ci-reader", "Pa55-404-secret")
    artifact_server.files["/app.tar.gz"] = archive(APP_FILES)
    write_shared_settings(fap_fleet)
    good = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/app.tar.gz", "ci-reader", "Pa55-404-secret")))
    assert good.exit_code == 0, good.output
    before = {host: (fap_fleet.current(host), fap_fleet.releases(host)) for host in fap_fleet.hosts}

    result = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/missing.tar.gz", "ci-reader", "Pa55-404-secret")))

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    masked_url = f"http://ci-reader:***@127.0.0.1:{artifact_server.port}/missing.tar.gz"
    for host in fap_fleet.hosts:
        assert any(host in line and masked_url in line and "404" in line for line in result.output.splitlines()), result.output
        assert (fap_fleet.current(host), fap_fleet.releases(host)) == before[host]
        # the server's HTML error page was not saved or extracted anywhere
        assert not list(fap_fleet.app_dir(host).rglob("missing.tar.gz"))
    assert "Pa55-404-secret" not in result.output
    assert {r.status for r in artifact_server.requests if r.path == "/missing.tar.gz"} == {404}


def test_wrong_credentials_fail_the_deploy_without_showing_them(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    artifact_server.credentials = ("ci-reader", "the-right-one")
    artifact_server.files["/app.tar.gz"] = archive(APP_FILES)
    write_shared_settings(fap_fleet)

    result = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/app.tar.gz"), curl_user="ci-reader:Wr0ng-Passw0rd"), "-v")

    assert result.exit_code != 0
    assert "401" in result.output
    assert "Wr0ng-Passw0rd" not in result.output
    assert [r.credentials for r in artifact_server.requests] == ["ci-reader:Wr0ng-Passw0rd"] * len(fap_fleet.hosts)
    for host in fap_fleet.hosts:
        assert fap_fleet.current(host) is None
        assert fap_fleet.releases(host) == []


@pytest.mark.parametrize("where", ["curl_user", "url"])
def test_credentials_never_appear_in_output_json_log_or_process_list(fap_fleet, fap_run, tmp_path, artifact_server, archive, where):
    password = "S3cr3t-Pa$$ \"word\""
    artifact_server.credentials = ("deployer", password)
    artifact_server.files["/app.tar.gz"] = archive(APP_FILES)
    write_shared_settings(fap_fleet)
    if where == "url":
        extra = settings(artifact_server.url("/app.tar.gz", "deployer", password))
    else:
        extra = settings(artifact_server.url("/app.tar.gz"), curl_user=f"deployer:{password}")
    log = tmp_path / "events.jsonl"

    result = deploy(fap_fleet, fap_run, tmp_path, extra, "-v", "--log-json", str(log))

    assert result.exit_code == 0, result.output
    assert [r.status for r in artifact_server.requests] == [200] * len(fap_fleet.hosts)
    secrets = [password, f"deployer:{password}"] + ([artifact_server.url("/", "deployer", password).split("@")[0]] if where == "url" else [])
    events = log.read_text()
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
        assert secret not in events
    # -v shows the curl command that ran, without the URL or credentials (they went on stdin)
    assert "curl --fail --location" in result.stdout and "--config -" in result.stdout
    assert any(json.loads(line).get("kind") == "command" and "curl --fail" in json.loads(line).get("message", "")
               for line in events.splitlines())
    if where == "url":
        assert f"http://deployer:***@127.0.0.1:{artifact_server.port}/app.tar.gz" in result.stdout
    # while each request was answered, the downloading curl was running: nothing on this
    # machine (fleet hosts included) had the password on its command line
    for request in artifact_server.requests:
        assert request.curl_processes, "no curl process was seen during the request"
        assert all("--config" in argv for argv in request.curl_processes)
        assert not [line for line in request.all_command_lines if password in line]


def test_postinstall_failure_fails_the_deploy_with_the_scripts_output(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    failing = "#!/bin/sh\necho 'migrating schema'\necho 'boom: database unreachable' >&2\nexit 3\n"
    artifact_server.files["/app.tar.gz"] = archive({**APP_FILES, "install.sh": failing})
    write_shared_settings(fap_fleet)

    result = deploy(fap_fleet, fap_run, tmp_path, settings(artifact_server.url("/app.tar.gz"), curl_postinstall_output=False))

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    for host in fap_fleet.hosts:
        failure = [line for line in result.output.splitlines() if host in line and "curl_postinstall_script" in line]
        assert failure and "exit 3" in failure[0] and "boom: database unreachable" in failure[0], result.output
        assert fap_fleet.current(host) is None
        assert fap_fleet.releases(host) == []
    # with curl_postinstall_output false the output is still shown when the script fails
    assert "migrating schema" in result.output


def test_a_missing_curl_url_is_a_one_line_error_naming_setting_and_host(fap_fleet, fap_run, tmp_path):
    result = deploy(fap_fleet, fap_run, tmp_path, {"plugins": ["fapistrano.curl"]})

    assert result.exit_code != 0
    assert "Traceback" not in result.output
    for host in fap_fleet.hosts:
        assert any(host in line and "curl_url is not set" in line for line in result.output.splitlines()), result.output
        assert fap_fleet.releases(host) == []


def test_an_archive_that_is_not_one_fails_with_a_clear_error(fap_fleet, fap_run, tmp_path, artifact_server):
    artifact_server.files["/app.tar.gz"] = b"<html>a login page served with 200</html>\n"

    result = deploy(fap_fleet, fap_run, tmp_path, {"plugins": ["fapistrano.curl"], "curl_url": artifact_server.url("/app.tar.gz"),
                                                    "curl_extract_tgz": True})

    assert result.exit_code != 0
    for host in fap_fleet.hosts:
        assert any(host in line and "cannot extract" in line and "tar.gz" in line for line in result.output.splitlines()), result.output
        assert fap_fleet.releases(host) == []


def test_fap_check_reports_an_unreachable_artifact_before_any_deploy(fap_fleet, fap_run, tmp_path, artifact_server, archive):
    artifact_server.credentials = ("ci-reader", "Check-Pa55")
    artifact_server.files["/app.tar.gz"] = archive(APP_FILES)
    write_shared_settings(fap_fleet)
    fap_fleet.write_deployfile(tmp_path, settings(artifact_server.url("/app.tar.gz", "ci-reader", "Check-Pa55")))

    ready = fap_run(["check", "-s", "test"], cwd=tmp_path)
    assert ready.exit_code == 0, ready.output

    fap_fleet.write_deployfile(tmp_path, settings(artifact_server.url("/app.tar.gz"), curl_user="ci-reader:Wrong-Pa55"))
    result = fap_run(["check", "-s", "test"], cwd=tmp_path)

    assert result.exit_code != 0
    for host in fap_fleet.hosts:
        assert any(host in line and "cannot be downloaded" in line and "401" in line for line in result.output.splitlines()), result.output
        assert fap_fleet.releases(host) == []
    assert "Wrong-Pa55" not in result.output and "Check-Pa55" not in result.output
