"""What fap prints when its output is not a terminal, what --dry-run says, and what the summary claims."""

from __future__ import annotations

import os
import pwd
import re

from test_commands_support import install_demo_plugin

from fapistrano.runner import lock_owner_text


def test_lock_holder_is_the_account_name_without_user_variables(monkeypatch):
    # Cron jobs, systemd units and `env -i` run without $USER: the lock still names an account, not a uid.
    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)

    owner = lock_owner_text("fap deploy")

    assert owner.startswith(pwd.getpwuid(os.getuid()).pw_name + "@"), owner
