"""The masker hides each spelling a secret takes on its way to the output."""

from __future__ import annotations

import shlex

import pytest

from fapistrano.errors import ConfigError
from fapistrano.masking import Masker, collect_secrets, url_passwords

SECRETS = ["Zq9'Xw4", 'Zq9"Xw4', "Zq9'\"Xw4", "Zq9\\Xw4", "Zq9\tXw4", "Zq9\\'\t\"Xw4"]


@pytest.mark.parametrize("secret", SECRETS)
def test_raw_shell_quoted_and_repr_spellings_are_hidden(secret):
    mask = Masker([secret])
    shown = [
        secret,
        shlex.quote(secret),
        shlex.quote(shlex.quote(secret)),
        repr(secret),
        repr(f"./install {secret}"),
        repr(f"it's \"both\" {secret}"),
        repr([secret]),
        repr(shlex.quote(secret)),
    ]
    for text in shown:
        assert "Zq9" not in mask(f"before {text} after"), text


def test_each_line_of_a_multi_line_secret_is_hidden_alone():
    mask = Masker(["-----BEGIN KEY-----\nZq9abcdef\nXw4ghijkl\n-----END KEY-----"])
    assert [mask(line) for line in ["Zq9abcdef", "Xw4ghijkl", "prefix Xw4ghijkl"]] == ["***", "***", "prefix ***"]


@pytest.mark.parametrize("url, password", [
    ("http://bob:pa'ss99@host/app.tgz", "pa'ss99"),
    ("http://bo'b:pass99@host/app.tgz", "pass99"),
    ("http://bob:p@ss99@host/app.tgz", "p@ss99"),
    ("http://bob:pa/ss99@host/app.tgz", "pa/ss99"),
    ("http://bob:pa ss99@host/app.tgz", "pa ss99"),
    ("git+ssh://git:tok99en@host/repo.git", "tok99en"),
])
def test_url_passwords_are_found_whatever_they_hold(url, password):
    assert password in url_passwords(url)
    assert "ss99" not in Masker(url_passwords(url))(f"fatal: unable to access {shlex.quote(url)}")


def test_urls_without_credentials_hold_no_password():
    assert url_passwords("https://host:8443/app.tgz") == []
    assert url_passwords("https://registry.example.org/@scope/pkg") == []


def test_masked_lists_and_mappings_yield_each_value_and_short_ones_are_errors():
    config = {"mask": [], "tokens": ["Zq9tokenA", "Zq9tokenB"], "environment": {"DB": "Zq9passwd"}, "empty": ""}
    assert set(collect_secrets(config, ["tokens", "environment", "empty"])) == {"Zq9tokenA", "Zq9tokenB", "Zq9passwd"}
    with pytest.raises(ConfigError, match=r"^deploy.yml:3: environment: PORT: a masked value must be at least 4"):
        collect_secrets({"environment": {"PORT": "80"}}, ["environment"], {"environment": "deploy.yml:3: "})


def test_each_word_of_a_masked_multi_word_value_is_hidden_alone():
    config = {"tokens": ["-H 'Authorization: Bearer Zq9tokXYZ123'"], "db_password": "Zq9correct Xw4horse"}
    mask = Masker(collect_secrets(config, ["tokens", "db_password"]))
    for text in ["Bearer Zq9tokXYZ123", "token=Zq9tokXYZ123", "curl -H Authorization:Zq9tokXYZ123", "Xw4horse alone"]:
        shown = mask(text)
        assert "Zq9" not in shown and "Xw4" not in shown, (text, shown)


def test_overlapping_secrets_are_hidden_as_their_union():
    mask = Masker(["AAAA1111", "1111BBBB"])
    assert mask("x AAAA1111BBBB y") == "x *** y"
    assert mask("1111BBBB AAAA1111") == "*** ***"
    assert mask("AAAA1111BBBBAAAA1111") == "***"


def test_a_url_password_in_output_is_hidden_without_any_setting_naming_it():
    # git prints the URL of a mirror from its own configuration (insteadOf): no setting holds the token.
    mask = Masker([])
    shown = mask("fatal: unable to access 'https://ci:Zq9TOKEN@mirror.example.org/app.git/': 403")
    assert shown == "fatal: unable to access 'https://ci:***@mirror.example.org/app.git/': 403"
