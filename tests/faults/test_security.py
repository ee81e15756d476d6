"""Values from deploy.yml and the command line are data, never code; secrets never show."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

PAYLOADS = {
    "semicolon": "a; touch /tmp/fap-pwned-semicolon",
    "subshell": "$(touch /tmp/fap-pwned-subshell)",
    "backticks": "`touch /tmp/fap-pwned-backticks`",
    "quotes": "it's \"quoted\" '; touch /tmp/fap-pwned-quotes; '",
}


def _no_payload_ran() -> None:
    for name in PAYLOADS:
        assert not Path(f"/tmp/fap-pwned-{name}").exists(), name


def test_hostile_names_and_values_are_quoted_everywhere(fap_fleet, fap_run, tmp_path):
    for name in PAYLOADS:
        Path(f"/tmp/fap-pwned-{name}").unlink(missing_ok=True)
    linked = ["config/a; touch \"/tmp/fap-pwned-semicolon\"", "config/$(touch \"/tmp/fap-pwned-subshell\")",
              "config/`touch \"/tmp/fap-pwned-backticks\"`", "config/it's here.yml"]
    app_name = "my app; $(touch /tmp/fap-pwned-subshell)"
    for host in fap_fleet.names:
        root = fap_fleet.hosts[host].path(f"/home/deploy/www/{app_name}")
        for name in linked:
            (root / "shared" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "shared" / name).write_text(name)
        subprocess.run(["chown", "-R", "deploy:deploy", str(root)], check=True)
    fap_fleet.write_deployfile(tmp_path, {"app_name": app_name, "linked_files": linked,
                                          "linked_dirs": ["log dir/`touch \"/tmp/fap-pwned-backticks\"`"],
                                          "environment": {f"VAR_{k.upper()}": v for k, v in PAYLOADS.items()}})

    result = fap_run(["deploy", "-s", "test", "--keep-releases", "2"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    _no_payload_ran()
    for host in fap_fleet.names:
        release = fap_fleet.current_dir(host, app_name)
        for name in linked:
            target = os.readlink(release / name)
            assert target == f"/home/deploy/www/{app_name}/shared/{name}"
            assert fap_fleet.hosts[host].path(target).read_text() == name
        assert (release / "log dir" / "`touch \"/tmp/fap-pwned-backticks\"`").is_symlink()
        # Sourcing .env as the app would gives back every value exactly, and runs nothing.
        shown = subprocess.run(["sh", "-c", "set -a; . ./.env; set +a; env"], cwd=release, capture_output=True, text=True, check=True).stdout
        for key, value in PAYLOADS.items():
            assert f"VAR_{key.upper()}={value}" in shown
    _no_payload_ran()

    once = fap_run(["once", "-s", "test", "-c", "printf '%s\\n' \"$VAR_SUBSHELL\""], cwd=tmp_path)
    assert once.exit_code == 0, once.output
    assert "$(touch /tmp/fap-pwned-subshell)" in once.stdout
    _no_payload_ran()


def test_secrets_are_masked_in_output_errors_and_the_json_log(fap_fleet, fap_run, tmp_path):
    (tmp_path / "leaky.py").write_text(
        "from fapistrano import hookimpl\n"
        "@hookimpl\n"
        "def fap_defaults():\n"
        "    return {'api_token': '', 'artifact_url': ''}\n"
        "@hookimpl\n"
        "def fap_deploy_updating(ctx):\n"
        "    ctx.log('using token ' + ctx.config['api_token'])\n"
        "    ctx.run('echo fetching ' + ctx.config['artifact_url'] + ' with ' + ctx.config['api_token'])\n"
        "@hookimpl\n"
        "def fap_deploy_updated(ctx):\n"
        "    ctx.run('echo ' + ctx.config['api_token'] + ' >&2; echo ' + ctx.config['artifact_url'] + ' >&2; exit 3')\n"
    )
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["leaky"], "mask": ["api_token"], "api_token": "s3cr3t-t0ken",
                                          "artifact_url": "https://bob:hunter22@example.invalid/app.tgz"})
    log = tmp_path / "events.jsonl"

    result = fap_run(["deploy", "-s", "test", "-v", "--log-json", str(log)], cwd=tmp_path)

    assert result.exit_code == 1
    assert "host1, host2, host3: updated: leaky: *** | https://bob:***@example.invalid/app.tgz (command exited 3)" in result.stderr
    everything = result.output + log.read_text()
    assert "s3cr3t-t0ken" not in everything
    assert "hunter22" not in everything
    assert "https://bob:***@example.invalid/app.tgz" in result.stdout
    assert "using token ***" in result.stdout
    events = [json.loads(line) for line in log.read_text().splitlines()]
    failed = [e for e in events if e.get("kind") == "phase" and e.get("status") == "failed"]
    assert {e["host"] for e in failed} == set(fap_fleet.names)
    assert all(e["phase"] == "updated" for e in failed)
    assert events[-1] == {"kind": "end", "ok": False, "title": "fap deploy: FAILED"}


# ---------------------------------------------------------------------------
# Masking every shape and spelling of a secret, in every channel
# ---------------------------------------------------------------------------

LEAKY_PLUGIN = '''
import shlex
from fapistrano import FapError, hookimpl

@hookimpl
def fap_defaults():
    return {"tokens": [], "banner": "", "db_password": "", "script": ""}

@hookimpl
def fap_deploy_updated(ctx):
    ctx.run("echo using " + " ".join(shlex.quote(t) for t in ctx.config["tokens"]))
    if ctx.config["db_password"]:
        ctx.run("printf '%s\\\\n' " + shlex.quote(ctx.config["db_password"]))
    ctx.log("banner: " + ctx.config["banner"])
    if ctx.config["script"]:
        raise FapError(f"script {ctx.config['script']!r} failed")
'''


def _channels(fap_run, directory: Path, *runs: list[str]) -> str:
    """stdout, stderr and the JSON log of each run, one text; each run's exit code is checked by the caller."""
    text = ""
    for index, args in enumerate(runs):
        log = directory / f"events-{index}.jsonl"
        result = fap_run([*args, "--log-json", str(log)] if args[0] != "config" else args, cwd=directory)
        text += f"\n--- fap {' '.join(args)} (exit {result.exit_code})\n{result.stdout}\n{result.stderr}"
        if log.exists():
            text += log.read_text()
    return text


def test_masked_mappings_and_lists_hide_each_value_everywhere(fap_local, fap_run):
    (fap_local.root / "leaky.py").write_text(LEAKY_PLUGIN)
    fap_local.write_deployfile({
        "plugins": ["leaky"],
        "mask": ["environment", "tokens"],
        "environment": {"DB_PASSWORD": "Zq9envpass", "API_KEY": "Zq9apikey"},
        "tokens": ["Zq9tokenA", "Zq9tokenB"],
        "banner": "tokens are %(tokens)s",
    })

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v"], ["deploy", "-s", "test"],
                     ["deploy", "-s", "test", "--dry-run", "-v"], ["config", "-s", "test"],
                     ["once", "-s", "test", "-c", "cat .env"])

    assert "Zq9" not in text, text
    assert "(exit 0)" in text and "(exit 1)" not in text and "(exit 2)" not in text, text
    # What was masked was shown: the .env text, the list in a command, the interpolated banner.
    assert "DB_PASSWORD=***" in text and "API_KEY=***" in text
    assert "using *** ***" in text
    assert "banner: tokens are *** ***" in text
    assert '"kind": "command"' in text  # command events reached the JSON log, masked


SPELLINGS = {
    "single-quote": "Zq9one'Xw4two",
    "double-quote": 'Zq9one"Xw4two',
    "both-quotes": "Zq9one'Xw4\"two",
    "backslash": "Zq9one\\Xw4two",
    "tab": "Zq9one\tXw4two",
    "all": "Zq9one\\'\t\"Xw4two",
    "multi-line": "Zq9one-line\nXw4two-line",
}


@pytest.mark.parametrize("secret", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_every_spelling_of_a_secret_is_masked(fap_local, fap_run, secret):
    (fap_local.root / "leaky.py").write_text(LEAKY_PLUGIN)
    fap_local.write_deployfile({
        "plugins": ["leaky"],
        "mask": ["db_password"],
        "db_password": secret,
        "environment": {"DB_PASSWORD": "%(db_password)s"},
        "script": "./install --password %(db_password)s",
    })

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v", "--script", ""],
                     ["once", "-s", "test", "-c", "cat .env; printf '%s\\n' \"$DB_PASSWORD\""],
                     ["deploy", "-s", "test", "-v"], ["deploy", "-s", "test", "--dry-run", "-v"], ["config", "-s", "test"])

    assert "Zq9" not in text and "Xw4" not in text, text
    assert "--- fap deploy -s test -v --script  (exit 0)" in text and re.search(r"--- fap once .*\(exit 0\)", text), text
    assert "script './install --password ***' failed" in text or 'script "./install --password ***" failed' in text, text
    assert re.search(r"DB_PASSWORD='?\*\*\*", text)  # the .env text (-v, --dry-run, once) with the value hidden


def test_secrets_in_yaml_and_validation_errors_are_masked(fap_local, fap_run):
    deploy = fap_local.write_deployfile({"mask": ["db_password"], "db_password": "Zq9first"})
    deploy.write_text(deploy.read_text() + "db_password: Zq9second\n")
    duplicate = fap_run(["config", "-s", "test"], cwd=fap_local.root)
    assert duplicate.exit_code == 2
    assert "duplicate key 'db_password'" in duplicate.stderr
    assert "Zq9" not in duplicate.output

    for setting, value in (("connection", "%(db_password)s"), ("max_fail", "%(db_password)s"),
                           ("linked_files", ["/%(db_password)s/app.yml"])):
        fap_local.write_deployfile({"mask": ["db_password"], "db_password": "Zq9secret", setting: value})
        result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
        assert result.exit_code == 2, (setting, result.output)
        assert f"{setting}:" in result.stderr and "***" in result.stderr, result.stderr
        assert "Zq9" not in result.output, result.output


@pytest.mark.parametrize("value, label", [("abc", "db_password"), ("", None)])
def test_a_secret_too_short_to_mask_is_a_config_error(fap_local, fap_run, value, label):
    fap_local.write_deployfile({"mask": ["db_password", "environment"], "db_password": value,
                                "environment": {"LONG_ENOUGH": "Zq9value"}})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    if label is None:  # an empty setting holds no secret
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("fap: error: deploy.yml:")
    assert f"{label}: a masked value must be at least 4 characters long" in result.stderr
    assert "abc" not in result.output

    fap_local.write_deployfile({"mask": ["environment"], "environment": {"DB_PASSWORD": "Zq9value", "PORT": "80"}})
    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)
    assert result.exit_code == 2, result.output
    assert "environment: PORT: a masked value must be at least 4 characters long" in result.stderr


URL_PASSWORDS = {
    "quote-in-password": "http://bob:pa'ss99@127.0.0.1:9/app.tgz",
    "double-quote-in-password": 'http://bob:pa"ss99@127.0.0.1:9/app.tgz',
    "quote-in-user": "http://bo'b:pass99@127.0.0.1:9/app.tgz",
    "at-in-password": "http://bob:p@ss99@127.0.0.1:9/app.tgz",
    "slash-in-password": "http://bob:pa/ss99@127.0.0.1:9/app.tgz",
    "space-in-password": "http://bob:pa ss99@127.0.0.1:9/app.tgz",
}


@pytest.mark.parametrize("url", URL_PASSWORDS.values(), ids=URL_PASSWORDS.keys())
@pytest.mark.parametrize("plugin, setting", [("fapistrano.curl", "curl_url"), ("fapistrano.git", "repo")])
def test_url_credentials_are_masked_whatever_they_hold(fap_local, fap_run, url, plugin, setting):
    fap_local.write_deployfile({"plugins": [plugin], setting: url})

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test"], ["deploy", "-s", "test", "-v"],
                     ["config", "-s", "test"])

    assert "ss99" not in text, text
    assert "(exit 1)" in text or "(exit 2)" in text  # the host does not answer: the deploy fails, saying where


def test_a_masked_curl_header_is_hidden_in_every_channel(fap_local, fap_run):
    fap_local.write_deployfile({"plugins": ["fapistrano.curl"], "curl_url": "http://127.0.0.1:9/app.tgz",
                                "mask": ["curl_options"],
                                "curl_options": ["--retry 0", "-H 'Authorization: Bearer Zq9header'"]})

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v"], ["deploy", "-s", "test", "--dry-run", "-v"],
                     ["config", "-s", "test"])

    assert "Zq9" not in text, text
    assert "(exit 1)" in text


# ---------------------------------------------------------------------------
# .env and links the code ships (on the fleet: what the host sees)
# ---------------------------------------------------------------------------

SHIPPER_PLUGIN = '''
from fapistrano import hookimpl

@hookimpl
def fap_defaults():
    return {"ship_links": {}}

@hookimpl
def fap_deploy_updating(ctx):
    # The code of this release holds symlinks (as a checkout or an archive would).
    for name, target in ctx.config["ship_links"].items():
        ctx.run(f"mkdir -p \\"$(dirname {name})\\" && ln -s {target} {name}", cwd=ctx.release_path)
'''


def test_env_is_readable_by_the_deploy_user_and_group_only(fap_fleet, fap_run, tmp_path):
    fap_fleet.write_deployfile(tmp_path, {"environment": {"DB_PASSWORD": "Zq9secret"}})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in fap_fleet.names:
        dotenv = fap_fleet.current_dir(host) / ".env"
        assert stat.S_IMODE(dotenv.stat().st_mode) == 0o640, host
        assert dotenv.owner() == "deploy"
        assert "DB_PASSWORD=Zq9secret" in dotenv.read_text()
        assert subprocess.run(["su", "-s", "/bin/sh", "nobody", "-c", f"cat {dotenv}"], capture_output=True).returncode != 0


def _outside(fap_fleet) -> dict[str, Path]:
    """On each host, files outside the app that a shipped link points at, owned by the deploy user."""
    found = {}
    for host in fap_fleet.names:
        outside = fap_fleet.hosts[host].path("/home/deploy/www/outside")
        shutil.rmtree(outside, ignore_errors=True)
        (outside / "conf").mkdir(parents=True)
        (outside / "env").write_text("original env\n")
        (outside / "conf" / "app.yml").write_text("original conf\n")
        subprocess.run(["chown", "-R", "deploy:deploy", str(outside)], check=True)
        found[host] = outside
    return found


def test_a_shipped_env_symlink_is_replaced_never_followed(fap_fleet, fap_run, tmp_path):
    outside = _outside(fap_fleet)
    (tmp_path / "shipper.py").write_text(SHIPPER_PLUGIN)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["shipper"], "ship_links": {".env": "/home/deploy/www/outside/env"},
                                          "environment": {"GREETING": "hello"}})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 0, result.output
    for host in fap_fleet.names:
        assert (outside[host] / "env").read_text() == "original env\n", host
        dotenv = fap_fleet.current_dir(host) / ".env"
        assert not dotenv.is_symlink() and dotenv.read_text() == "GREETING=hello\n"
        assert stat.S_IMODE(dotenv.stat().st_mode) == 0o640


def test_a_shipped_directory_symlink_on_a_linked_path_fails_the_deploy(fap_fleet, fap_run, tmp_path):
    outside = _outside(fap_fleet)
    for host in fap_fleet.names:
        shared = fap_fleet.app_dir(host) / "shared" / "conf"
        shared.mkdir(parents=True)
        (shared / "app.yml").write_text("shared conf\n")
        subprocess.run(["chown", "-R", "deploy:deploy", str(fap_fleet.app_dir(host))], check=True)
    (tmp_path / "shipper.py").write_text(SHIPPER_PLUGIN)
    fap_fleet.write_deployfile(tmp_path, {"plugins": ["shipper"], "ship_links": {"conf": "/home/deploy/www/outside/conf"},
                                          "linked_files": ["conf/app.yml"]})

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 1, result.output
    assert "conf in the release is a symlink; fap does not write through links the code ships" in result.stderr
    for host in fap_fleet.names:
        assert (outside[host] / "conf" / "app.yml").read_text() == "original conf\n", host
        assert sorted(p.name for p in (outside[host] / "conf").iterdir()) == ["app.yml"], host
        assert fap_fleet.current(host) is None


# ---------------------------------------------------------------------------
# %(name)s in shell text: a value is data whatever quotes surround it
# ---------------------------------------------------------------------------

QUOTED_REFERENCES = {
    "local-double": ("hooks", {"updated": [{"local": 'echo "deployed %(note)s" > note.txt'}]}, "double quotes"),
    "run-double": ("hooks", {"updated": [{"run": 'echo "deployed %(note)s" > note.txt'}]}, "double quotes"),
    "run-single": ("hooks", {"updated": [{"run": "echo 'deployed %(note)s' > note.txt"}]}, "single quotes"),
    "run-heredoc": ("hooks", {"updated": [{"run": "cat > note.txt <<EOF\ndeployed %(note)s\nEOF"}]}, "a here-document"),
    "run-backquotes": ("hooks", {"updated": [{"run": "echo `echo %(note)s` > note.txt"}]}, "backquotes"),
    "healthcheck-double": ("healthcheck", 'test -n "%(note)s"', "double quotes"),
}


@pytest.mark.parametrize("key, value, place", QUOTED_REFERENCES.values(), ids=QUOTED_REFERENCES.keys())
def test_a_reference_inside_quotes_is_refused_before_anything_runs(fap_local, fap_run, key, value, place):
    pwned = Path("/tmp/fap-pwned-quoted")
    pwned.unlink(missing_ok=True)
    fap_local.write_deployfile({"note": "", key: value})

    result = fap_run(["deploy", "-s", "test", "--note", f"$(touch {pwned})"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert not pwned.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fap: error: deploy.yml:"), result.stderr
    assert f"%(note)s is inside {place}, where the shell would read its value as code; " in lines[0]
    assert fap_local.releases() == []


def test_a_reference_outside_quotes_is_one_word_in_steps_and_the_healthcheck(fap_local, fap_run):
    pwned = Path("/tmp/fap-pwned-quoted")
    pwned.unlink(missing_ok=True)
    note = f"$(touch {pwned}) `touch {pwned}` \"; touch {pwned}; '"
    fap_local.write_deployfile({
        "note": "",
        "hooks": {"updated": [{"local": 'echo "deployed "%(note)s" today" > local-note.txt'},
                              {"run": "printf '%%s\\n' 'deployed '%(note)s' today' > note.txt"},
                              {"run": 'echo "$(echo %(note)s)" > nested.txt'}]},
        "healthcheck": "test \"$(cat note.txt)\" = 'deployed '%(note)s' today'",
    })

    result = fap_run(["deploy", "-s", "test", "--note", note], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert not pwned.exists()
    assert (fap_local.root / "local-note.txt").read_text() == f"deployed {note} today\n"
    release = fap_local.path / "current"
    assert (release / "note.txt").read_text() == f"deployed {note} today\n"
    assert (release / "nested.txt").read_text() == f"{note}\n"


# Every setting that is shell text follows the rule of steps: the core's shell_command, the upload
# plugin's build (run on this machine), the git plugin's ssh command (run by git through a shell).
SHELL_TEXT_SETTINGS = {
    "upload_build": {"plugins": ["fapistrano.upload"], "upload_source": "."},
    "shell_command": {},
    "git_ssh_command": {"plugins": ["fapistrano.git"], "repo": "/nonexistent.git"},
}


@pytest.mark.parametrize("setting", SHELL_TEXT_SETTINGS)
def test_a_reference_inside_quotes_of_any_shell_text_setting_is_refused(fap_local, fap_run, setting):
    pwned = Path("/tmp/fap-pwned-quoted")
    pwned.unlink(missing_ok=True)
    fap_local.write_deployfile({"note": "", **SHELL_TEXT_SETTINGS[setting], setting: 'sh -c "echo %(note)s"'})

    result = fap_run(["deploy", "-s", "test", "--note", f"$(touch {pwned})"], cwd=fap_local.root)

    assert result.exit_code == 2, result.output
    assert not pwned.exists()
    assert f"{setting}: %(note)s is inside double quotes, where the shell would read its value as code" in result.stderr
    assert fap_local.releases() == []


def test_a_reference_in_the_upload_build_is_one_word(fap_local, fap_run):
    pwned = Path("/tmp/fap-pwned-quoted")
    pwned.unlink(missing_ok=True)
    note = f"$(touch {pwned}); touch {pwned}"
    fap_local.write_deployfile({"note": "", "plugins": ["fapistrano.upload"], "upload_source": "out",
                                "upload_build": "mkdir -p out && printf '%%s\\n' %(note)s > out/note.txt"})

    result = fap_run(["deploy", "-s", "test", "--note", note], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert not pwned.exists()
    assert (fap_local.path / "current" / "note.txt").read_text() == f"{note}\n"


def test_a_reference_in_shell_command_is_one_word(fap_local, fap_run):
    pwned = Path("/tmp/fap-pwned-quoted")
    pwned.unlink(missing_ok=True)
    fap_local.write_deployfile({"note": "", "shell_command": "sh -s %(note)s"})
    assert fap_run(["deploy", "-s", "test"], cwd=fap_local.root).exit_code == 0

    result = fap_run(["shell", "-s", "test", "--note", f"x; touch {pwned}"], cwd=fap_local.root,
                     input='echo "args: $1"\n')

    assert result.exit_code == 0, result.output
    assert not pwned.exists()
    assert f"args: x; touch {pwned}\n" in result.stdout


@pytest.mark.parametrize("host", ["-oProxyCommand=touch${IFS}/tmp/fap-pwned-host", "-oProxyCommand=touch${IFS}/tmp/fap-pwned-host@web1",
                                  "deploy@-oProxyCommand=touch${IFS}/tmp/fap-pwned-host"])
def test_a_host_named_like_an_ssh_option_is_a_config_error(fap_fleet, fap_run, tmp_path, host):
    pwned = Path("/tmp/fap-pwned-host")
    pwned.unlink(missing_ok=True)
    fap_fleet.write_deployfile(tmp_path, hosts=[host])

    result = fap_run(["deploy", "-s", "test"], cwd=tmp_path)

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("fap: error: deploy.yml:") and "hosts:" in result.stderr, result.stderr
    assert "must not start with '-'" in result.stderr, result.stderr
    assert not pwned.exists()


def test_each_word_of_a_masked_header_and_overlapping_secrets_are_hidden_when_printed_alone(fap_local, fap_run):
    fap_local.write_deployfile({
        "mask": ["tokens", "first", "second"],
        "tokens": ["-H 'Authorization: Bearer Zq9tokXYZ123'"],
        "first": "AAAA1111", "second": "1111BBBB",
        "hooks": {"updated": [{"run": "echo %(tokens)s | sed 's/.*Bearer //; s/.$//; s/^/token=/'"},
                              {"run": "echo %(tokens)s | sed 's/^-H .Authorization: //; s/.$//'"},
                              {"run": "echo AAAA1111BBBB"}]},
    })

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v"], ["config", "-s", "test"])

    assert "(exit 0)" in text and "(exit 1)" not in text, text
    assert "Zq9" not in text and "BBBB" not in text and "AAAA" not in text, text
    assert "token=***" in text


def test_a_url_password_in_a_commands_output_is_hidden(fap_local, fap_run):
    # As git prints a mirror's URL from its own configuration: no setting of the run holds the token.
    fap_local.write_deployfile({"hooks": {"updating": [{"run": "p=$(printf 'Zq9%s' tok123); echo \"fatal: unable to access"
                                                               " 'https://ci:$p@mirror.example.org/app.git/': 403\" >&2; exit 128"}]}})

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v"], ["deploy", "-s", "test"])

    assert "(exit 1)" in text and "(exit 0)" not in text, text
    assert "Zq9tok123" not in text, text
    assert "fatal: unable to access 'https://ci:***@mirror.example.org/app.git/': 403" in text, text


def test_a_healthcheck_reaches_the_host_on_stdin_never_its_process_list(fap_local, fap_run):
    seen = fap_local.root / "processes.txt"
    fap_local.write_deployfile({"mask": ["token"], "token": "Zq9health-tok",
                                "healthcheck": f"test %(token)s = Zq9health-tok && ps -eo args= > {seen}"})

    result = fap_run(["deploy", "-s", "test", "-v"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    processes = seen.read_text()
    assert "ps -eo args=" in processes  # the check ran, and saw the process list while it ran
    assert "Zq9health" not in processes, processes
    assert "Zq9health" not in result.output


def test_a_healthcheck_of_any_size_runs(fap_local, fap_run):
    # Linux caps one argument at 128 KiB: a check passed as one would fail with "Argument list too long".
    fap_local.write_deployfile({"healthcheck": "# " + "x" * 200_000 + "\ntest -d .", "hooks": {"finished": [{"run": "echo done"}]}})

    result = fap_run(["deploy", "-s", "test"], cwd=fap_local.root)

    assert result.exit_code == 0, result.output
    assert fap_local.current() is not None


def test_terminal_escapes_from_host_output_never_reach_the_terminal(fap_local, fap_run):
    fap_local.write_deployfile({"hooks": {"updated": [{"run": "printf 'title\\033]0;owned\\007 and \\033[2Kerased\\r\\n'"},
                                                      {"run": "printf 'boom\\033[2K\\033[1A\\302\\233J gone\\n' >&2; exit 1"}]}})

    text = _channels(fap_run, fap_local.root, ["deploy", "-s", "test", "-v"], ["deploy", "-s", "test"])

    assert "(exit 1)" in text and "(exit 0)" not in text, text
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]", text.replace("\r\n", "\n")), repr(text)
    assert "title\\x1b]0;owned\\x07 and \\x1b[2Kerased" in text  # shown, made harmless
    assert "fap: error: localhost: updated: core.steps: step deploy.yml:" in text
    assert "boom\\x1b[2K\\x1b[1A\\x9bJ gone" in text  # the error line too
