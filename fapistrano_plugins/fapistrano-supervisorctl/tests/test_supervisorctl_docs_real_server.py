"""A new user's path, README -> quick start -> "to a real server" -> "Supervisor on a real server".

One host of the SSH test fleet plays the server: it has the ``deploy`` user,
``python3``, ``git`` and supervisor's programs, and nothing else set up. The
test takes its commands and settings from the docs themselves (the code
blocks named ``:name:`` in docs/quickstart.rst and docs/supervisor.rst), so
a change to the docs that breaks the path breaks this test:

1. ``fap check`` before the supervisor setup fails and points to the docs' section;
2. the deploy user's supervisord is set up and started as the section says;
3. the quick start's deploy.yml plus the section's settings deploy an
   application from a git repository, and supervisord runs it from ``current``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fapistrano.testing import Fleet, FleetUnavailable
from ruamel.yaml import YAML
from supervised_fleet import eventually

DOCS = Path(__file__).resolve().parents[3] / "docs"
WWW = "/home/deploy/www"
#: The deploy user's supervisor directory the docs set up; each fleet host gets its own.
USER_SUPERVISOR = "/home/deploy/supervisor"
#: What ``fap check`` names when the deploy user lacks access to supervisord.
SECTION = "Supervisor on a real server"


def named_block(page: str, name: str) -> str:
    """The text of the code block with ``:name: name`` in docs/``page``, dedented."""
    text = (DOCS / page).read_text()
    match = re.search(
        rf"^(?P<indent> *)\.\. code-block:: \w+\n(?:(?P=indent) +:\w+:.*\n)*?(?P=indent) +:name: {re.escape(name)}\n"
        rf"(?:(?P=indent) +:\w+:.*\n)*\n(?P<body>(?:(?P=indent) +\S.*\n|\n)+)",
        text,
        re.MULTILINE,
    )
    assert match, f"docs/{page} has no code block named {name}"
    lines = match.group("body").rstrip("\n").splitlines()
    width = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[width:] for line in lines) + "\n"


def trimmed_deployfile() -> dict[str, Any]:
    """The quick start's trimmed deploy.yml (step 2 of "to a real server")."""
    text = (DOCS / "quickstart.rst").read_text()
    match = re.search(r"   \.\. code-block:: yaml\n      :caption: deploy.yml\n\n((?:      .*\n|\n)+)", text)
    assert match, "docs/quickstart.rst lost its trimmed deploy.yml"
    return YAML(typ="safe").load("\n".join(line[6:] for line in match.group(1).splitlines()))


@pytest.fixture(scope="module")
def server() -> Iterator[Fleet]:
    """One SSH host with supervisor installed and nothing set up for the deploy user."""
    for program in ("supervisord", "supervisorctl", "git"):
        if not shutil.which(program):
            _unavailable(f"{program} is not installed (apt-get install supervisor git)")
    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        _unavailable(str(reason))
    fleet = Fleet(["app1"], mounts={WWW: "www", USER_SUPERVISOR: "deploy-supervisor"}, app_name="myapp")
    try:
        try:
            # The mount point exists on this machine; each host sees its own (empty) directory over it.
            Path(USER_SUPERVISOR).mkdir(parents=True, exist_ok=True)
            fleet.start()
        except FleetUnavailable as reason:
            _unavailable(str(reason))
        yield fleet
    finally:
        # Also ends the supervisord the test started over SSH: it runs in the host's namespace.
        fleet.stop()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def ssh(fleet: Fleet, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a login shell of the deploy user on the server, as the docs' reader would."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), "app1", "bash", "-s"], input=script,
                          capture_output=True, text=True, timeout=60, check=False)


def app_repository(where: Path) -> Path:
    """The application's git repository: an app, its requirements and its supervisor conf from the docs."""
    repo = where / "myapp"
    (repo / "configs").mkdir(parents=True)
    (repo / "app.py").write_text(
        "import os, time\n"
        "with open('/home/deploy/www/myapp/shared/running', 'w') as record:\n"
        "    record.write(f'{os.getpid()} {os.getcwd()}')\n"
        "time.sleep(3600)\n"
    )
    (repo / "requirements.txt").write_text("# nothing beyond the standard library\n")
    # The docs' program conf, running this app instead of gunicorn.
    conf = named_block("supervisor.rst", "supervisor-user-program")
    assert "command=/home/deploy/www/myapp/current/venv/bin/gunicorn app:app" in conf
    conf = conf.replace("venv/bin/gunicorn app:app", "venv/bin/python app.py")
    (repo / "configs" / "supervisor_production_web.conf").write_text(conf)
    deploy = pwd.getpwnam("deploy")
    git = ["git", "-C", str(repo), "-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "myapp"], check=True)
    for path in [repo, *repo.rglob("*")]:
        os.chown(path, deploy.pw_uid, deploy.pw_gid, follow_symlinks=False)
    where.chmod(0o755)
    return repo


def test_a_new_user_deploys_under_supervisord_following_the_docs(server: Fleet, fap_run: Any, tmp_path: Path) -> None:
    repo = app_repository(server.dir / "src")
    project = tmp_path / "myapp"
    project.mkdir()
    (project / ".env.production").write_text("SECRET_KEY=from-the-docs\n")

    # deploy.yml: the quick start's, on this fleet, with the supervisor plugin the quick start's step 5 adds.
    deployfile = trimmed_deployfile()
    assert deployfile["branch"] == "master"
    deployfile["repo"] = str(repo)
    deployfile["plugins"].append("fapistrano.supervisorctl")
    deployfile["ssh_config"] = str(server.ssh_config)
    deployfile["stage_role_configs"] = {"production": {"web": {"hosts": ["deploy@app1"]}}}
    write_yaml(project / "deploy.yml", deployfile)

    # Step 3 of "to a real server": the linked file, put in place with the documented command.
    put_env = named_block("quickstart.rst", "put-shared-files").replace("ssh deploy@app1.example.com",
                                                                       f"ssh -F {server.ssh_config} deploy@app1")
    done = subprocess.run(["bash", "-c", put_env], cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr

    # Before the supervisor setup, fap check says what is missing and where the docs explain it.
    check = fap_run(["check", "-s", "production"], cwd=project)
    assert check.exit_code != 0, check.output
    problems = [line for line in check.output.splitlines() if "supervisor" in line and "app1" in line]
    assert any("supervisorctl does not answer" in line for line in problems), check.output
    assert any("supervisor_target" in line and "not writable" in line for line in problems), check.output
    assert problems and all(SECTION in line for line in problems), check.output

    # "A supervisord of the deploy user": the setup and the start, as the deploy user on the server.
    for name in ("supervisor-user-setup", "supervisor-user-start"):
        done = ssh(server, named_block("supervisor.rst", name))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    settings = YAML(typ="safe").load(named_block("supervisor.rst", "supervisor-user-settings"))
    write_yaml(project / "deploy.yml", {**deployfile, **settings})

    check = fap_run(["check", "-s", "production"], cwd=project)
    assert check.exit_code == 0, check.output

    deploy = fap_run(["deploy", "-s", "production"], cwd=project)

    assert deploy.exit_code == 0, deploy.output
    release = server.current("app1")
    assert release is not None
    status = ssh(server, f"supervisorctl -c {USER_SUPERVISOR}/supervisord.conf status myapp")
    assert re.search(r"^myapp +RUNNING", status.stdout, re.MULTILINE), status.stdout + status.stderr
    record = server.app_dir("app1") / "shared" / "running"
    pid, cwd = eventually(lambda: record.read_text().split())
    assert cwd == f"{WWW}/myapp/releases/{release}"  # supervisord started it in current, the new release
    link = os.readlink(server.hosts["app1"].path(f"{USER_SUPERVISOR}/conf.d/myapp.conf"))
    assert link == f"{WWW}/myapp/current/configs/supervisor_production_web.conf"
    assert os.readlink(server.current_dir("app1") / ".env.local") == f"{WWW}/myapp/shared/.env.local"
    assert (server.app_dir("app1") / "shared" / ".env.local").read_text() == "SECRET_KEY=from-the-docs\n"


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    yaml = YAML()
    with open(path, "w") as stream:
        yaml.dump(data, stream)
