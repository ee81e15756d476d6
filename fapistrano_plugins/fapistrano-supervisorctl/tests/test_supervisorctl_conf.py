"""Reading a supervisor conf and adding deploy.yml's environment to it, checked against supervisord's own parser."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from fapistrano import FapError

from fapistrano_supervisorctl import conf as sconf

CONF = """\
; the app's processes
[group:web]
programs=gunicorn, static

[program:gunicorn]
command=/bin/true
environment=FROM_CONF="conf",
    SECOND="two"

[program:static]
command=/bin/true

[program:worker]
command=/bin/true
; the worker's own comment

[unix_http_server]
file=/tmp/x.sock
"""

#: Reads a conf with supervisord's parser and prints each program's environment as supervisord builds it.
SUPERVISOR_READS = """
import json, sys
from supervisor.options import UnhosedConfigParser, expand
from supervisor.datatypes import dict_of_key_value_pairs
parser = UnhosedConfigParser()
parser.read_string(sys.stdin.read())
print(json.dumps({s: dict_of_key_value_pairs(expand(parser.get(s, "environment", raw=True), {}, "environment"))
                  for s in parser.sections() if s.startswith("program:")}))
"""


def test_programs_groups_and_what_supervisor_program_may_name():
    defined = sconf.programs(CONF)
    assert defined.groups == {"web": ["gunicorn", "static"]}
    assert defined.standalone == ["worker"]
    assert sorted(defined.group_names) == ["web", "worker"]
    for name in ("worker", "worker:*", "web:*", "web:", "web:gunicorn"):
        assert defined.defines(name), name
    for name in ("nosuch", "gunicorn", "web", "web:nosuch", "nosuch:*"):
        assert not defined.defines(name), name
    assert defined.describe() == "worker, web:* (web:gunicorn, web:static)"
    assert sconf.programs("[unix_http_server]\nfile=x\n").describe() == "no program"


def test_environment_is_added_to_every_program_and_the_conf_keeps_its_own_keys_last():
    rendered = sconf.with_environment(CONF, {"APP_ENV": "production", "GREETING": "hi"})
    assert rendered.count("environment=") == 3
    assert 'environment=APP_ENV="production",GREETING="hi",FROM_CONF="conf",\n    SECOND="two"\n' in rendered
    # Inserted inside its section, before the comments that lead into the next one.
    assert '[program:worker]\ncommand=/bin/true\nenvironment=APP_ENV="production",GREETING="hi"\n; the worker' in rendered
    assert "[unix_http_server]\nfile=/tmp/x.sock\n" in rendered
    assert sconf.with_environment(CONF, {}) == CONF


@pytest.mark.skipif(not shutil.which("supervisord"), reason="supervisor is not installed")
def test_supervisord_reads_back_every_value_exactly():
    environment = {"COMMA": "a,b", "QUOTE": 'say "hi" now', "APOSTROPHE": "it's", "PERCENT": "50% %(x)s",
                   "SEMI": "a;b#c", "EMPTY": "", "SPACES": "  two  words", "BACKSLASH": "C:\\dir\\n"}
    rendered = sconf.with_environment(CONF, environment)
    python = shutil.which("supervisord")
    with open(python) as script:
        interpreter = script.readline().removeprefix("#!").strip()  # supervisord's own Python
    read = subprocess.run([interpreter, "-c", SUPERVISOR_READS], input=rendered, capture_output=True, text=True,
                          check=True)
    programs = json.loads(read.stdout)
    assert programs["program:worker"] == environment
    assert programs["program:gunicorn"] == {**environment, "FROM_CONF": "conf", "SECOND": "two"}


@pytest.mark.parametrize(("value", "problem"), [
    ("two\nlines", "holds a line break"),
    ('"quoted"', "starts or ends with a quote"),
    ("both ' and \" in", "holds both kinds of quote"),
    ("a ; comment", "holds ' ;' or ' #'"),
])
def test_a_value_supervisord_cannot_carry_is_refused_naming_the_key_not_the_value(value, problem):
    with pytest.raises(FapError) as raised:
        sconf.with_environment(CONF, {"SECRET_KEY": value})
    assert f"environment: the value of SECRET_KEY {problem}" in str(raised.value)
    assert value not in str(raised.value)
