"""A new user's path, README -> quick start -> "to a real server" -> "Supervisor on a real server".

One host of the SSH test fleet plays the server: it has the ``deploy`` user,
``python3``, ``git`` and supervisor's programs, and nothing else set up. The
test takes its commands and settings from the docs themselves (the code
blocks named ``:name:`` in docs/quickstart.rst and docs/supervisor.rst), so
a change to the docs that breaks the path breaks this test:

1. ``fap check`` before the supervisor setup fails and points to the docs' section;
2. supervisord is set up as the section says: the deploy user's own, or the
   system's (a root supervisord, as Debian's package runs it) through the
   documented sudo rule;
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
from ruamel.yaml import YAML
from supervised_fleet import SUPERVISOR_DIR, SupervisedFleet, eventually

from fapistrano.testing import Fleet, FleetUnavailable

pytestmark = pytest.mark.fleet

DOCS = Path(__file__).resolve().parents[3] / "docs"
WWW = "/home/deploy/www"
#: The deploy user's supervisor directory the docs set up; each fleet host gets its own.
USER_SUPERVISOR = "/home/deploy/supervisor"
#: What ``fap check`` names when the deploy user lacks access to supervisord.
SECTION = "Supervisor on a real server"
#: The sudo rule the docs' system-supervisord setup writes (on this machine: the hosts share /etc).
SUDOERS = Path("/etc/sudoers.d/fap-supervisorctl")
#: Debian's packaged supervisord: its socket is root's alone (mode 0700), conf.d belongs to root.
DEBIAN_SOCKET = """\
[unix_http_server]
file=/etc/supervisor/supervisor.sock
chmod=0700
"""


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


def _machine_ready() -> None:
    for program in ("supervisord", "supervisorctl", "git"):
        if not shutil.which(program):
            _unavailable(f"{program} is not installed (apt-get install supervisor git)")
    try:
        Fleet.check_machine()
    except FleetUnavailable as reason:
        _unavailable(str(reason))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def server() -> Iterator[Fleet]:
    """One SSH host with supervisor installed and nothing set up for the deploy user."""
    _machine_ready()
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


@pytest.fixture
def debian_server() -> Iterator[SupervisedFleet]:
    """One SSH host running supervisord as root, set up the way Debian's package leaves it."""
    _machine_ready()
    if not shutil.which("sudo") or not SUDOERS.parent.is_dir():
        _unavailable("sudo (with /etc/sudoers.d) is not installed")
    if SUDOERS.exists():
        _unavailable(f"{SUDOERS} exists on this machine; not overwriting it")
    Path(SUPERVISOR_DIR).mkdir(parents=True, exist_ok=True)
    fleet = Fleet(["app1"], mounts={WWW: "www", SUPERVISOR_DIR: "supervisor"}, app_name="myapp")
    supervised = SupervisedFleet(fleet)
    try:
        try:
            fleet.start()
            supervised.prepare("app1")
            directory = supervised.supervisor_dir("app1")
            conf = (directory / "supervisord.conf").read_text()
            conf = re.sub(r"\[unix_http_server\]\n(?:.*\n)*?\n", DEBIAN_SOCKET + "\n", conf, count=1)
            (directory / "supervisord.conf").write_text(conf)
            os.chown(directory / "conf.d", 0, 0)
            supervised.start_supervisord("app1")
        except FleetUnavailable as reason:
            _unavailable(str(reason))
        yield supervised
    finally:
        SUDOERS.unlink(missing_ok=True)
        supervised.stop()
        fleet.stop()


def ssh(fleet: Fleet, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a login shell of the deploy user on the server, as the docs' reader would."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), "app1", "bash", "-s"], input=script,
                          capture_output=True, text=True, timeout=60, check=False)


def app_repository(where: Path, program_block: str) -> Path:
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
    conf = named_block("supervisor.rst", program_block)
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


def quick_start_project(server: Fleet, project: Path, program_block: str) -> dict[str, Any]:
    """Steps 2 and 3 of "to a real server": deploy.yml (the quick start's, on this fleet) and the linked file."""
    project.mkdir()
    (project / ".env.production").write_text("SECRET_KEY=from-the-docs\n")
    deployfile = trimmed_deployfile()
    assert deployfile["branch"] == "master"
    deployfile["repo"] = str(app_repository(server.dir / "src", program_block))
    deployfile["plugins"].append("fapistrano.supervisorctl")  # step 5
    deployfile["ssh_config"] = str(server.ssh_config)
    deployfile["stage_role_configs"] = {"production": {"web": {"hosts": ["deploy@app1"]}}}
    write_yaml(project / "deploy.yml", deployfile)
    put_env = named_block("quickstart.rst", "put-shared-files").replace("ssh deploy@app1.example.com",
                                                                       f"ssh -F {server.ssh_config} deploy@app1")
    done = subprocess.run(["bash", "-c", put_env], cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return deployfile


def assert_check_points_to_the_docs(fap_run: Any, project: Path) -> None:
    """Before the supervisor setup, fap check says what is missing and where the docs explain it."""
    check = fap_run(["check", "-s", "production"], cwd=project)
    assert check.exit_code != 0, check.output
    problems = [line for line in check.output.splitlines() if "supervisor" in line and "app1" in line]
    assert any("supervisorctl does not answer" in line for line in problems), check.output
    assert any("supervisor_target" in line and "not writable" in line for line in problems), check.output
    assert problems and all(SECTION in line for line in problems), check.output


def assert_deployed_and_running(server: Fleet, fap_run: Any, project: Path, supervisor_dir: str) -> str:
    """fap check passes, fap deploy succeeds, supervisord runs the app from the new release; the release."""
    check = fap_run(["check", "-s", "production"], cwd=project)
    assert check.exit_code == 0, check.output

    deploy = fap_run(["deploy", "-s", "production"], cwd=project)

    assert deploy.exit_code == 0, deploy.output
    release = server.current("app1")
    assert release is not None
    record = server.app_dir("app1") / "shared" / "running"
    pid, cwd = eventually(lambda: record.read_text().split())
    assert cwd == f"{WWW}/myapp/releases/{release}"  # supervisord started it in current, the new release
    link = os.readlink(server.hosts["app1"].path(f"{supervisor_dir}/conf.d/myapp.conf"))
    assert link == f"{WWW}/myapp/current/.fap-supervisor.conf"
    assert os.readlink(server.current_dir("app1") / ".env.local") == f"{WWW}/myapp/shared/.env.local"
    assert (server.app_dir("app1") / "shared" / ".env.local").read_text() == "SECRET_KEY=from-the-docs\n"
    return release


def test_a_new_user_deploys_under_their_own_supervisord_following_the_docs(
    server: Fleet, fap_run: Any, tmp_path: Path
) -> None:
    project = tmp_path / "myapp"
    deployfile = quick_start_project(server, project, "supervisor-user-program")
    assert_check_points_to_the_docs(fap_run, project)

    # "The deploy user's own supervisord": the setup and the start, as the deploy user on the server.
    for name in ("supervisor-user-setup", "supervisor-user-start"):
        done = ssh(server, named_block("supervisor.rst", name))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    settings = YAML(typ="safe").load(named_block("supervisor.rst", "supervisor-user-settings"))
    write_yaml(project / "deploy.yml", {**deployfile, **settings})

    assert_deployed_and_running(server, fap_run, project, USER_SUPERVISOR)

    def running() -> None:
        status = ssh(server, f"supervisorctl -c {USER_SUPERVISOR}/supervisord.conf status myapp")
        assert re.search(r"^myapp +RUNNING", status.stdout, re.MULTILINE), status.stdout + status.stderr

    eventually(running)  # RUNNING comes startsecs after the start


def test_a_new_user_deploys_under_the_system_supervisord_through_sudo_following_the_docs(
    debian_server: SupervisedFleet, fap_run: Any, tmp_path: Path
) -> None:
    server = debian_server.fleet
    project = tmp_path / "myapp"
    deployfile = quick_start_project(server, project, "supervisor-sudo-program")
    assert_check_points_to_the_docs(fap_run, project)

    # "The system supervisord, through a sudo rule": root's commands on the server (supervisor is
    # installed already; apt-get would change this machine), then the settings.
    setup = "".join(line for line in named_block("supervisor.rst", "supervisor-sudo-setup").splitlines(keepends=True)
                    if not line.startswith("sudo apt-get install"))
    done = server.in_host("app1", ["bash", "-euc", setup], timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    settings = YAML(typ="safe").load(named_block("supervisor.rst", "supervisor-sudo-settings"))
    write_yaml(project / "deploy.yml", {**deployfile, **settings})

    assert_deployed_and_running(server, fap_run, project, SUPERVISOR_DIR)

    def running() -> None:
        assert debian_server.status("app1")["myapp"][0] == "RUNNING"

    eventually(running)  # RUNNING comes startsecs after the start


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    yaml = YAML()
    with open(path, "w") as stream:
        yaml.dump(data, stream)
