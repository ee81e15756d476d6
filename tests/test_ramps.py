"""Canary ramps: the size of each batch (Ansible's ``serial``), and the values batch_size and batch_pause refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fapistrano import ramps
from fapistrano.errors import ConfigError


@pytest.mark.parametrize(("total", "sizes"), [(5, [1, 1, 3]), (10, [1, 2, 7]), (40, [1, 10, 29]), (1, [1]), (2, [1, 1])])
def test_a_ramp_of_1_25_100_percent_gives_the_documented_batches(total, sizes):
    assert ramps.batch_sizes([1, "25%", "100%"], total) == sizes


def test_the_last_size_repeats_until_every_host_is_done():
    assert ramps.batch_sizes([1, 2], 7) == [1, 2, 2, 2]
    assert ramps.batch_sizes(["10%"], 25) == [2] * 12 + [1]  # 2.5 rounded down
    assert ramps.batch_sizes([1, "50%", "100%"], 5) == [1, 2, 2]


def test_a_percentage_of_a_small_fleet_is_at_least_one_host():
    assert ramps.batch_sizes(["1%", "100%"], 3) == [1, 2]


def test_a_plain_size_and_zero_keep_their_meaning():
    assert ramps.batch_sizes(2, 5) == [2, 2, 1]
    assert ramps.batch_sizes(0, 5) == [5]


def test_split_keeps_the_hosts_order():
    assert ramps.split(list("abcde"), [1, "50%", "100%"]) == [["a"], ["b", "c"], ["d", "e"]]


@given(st.lists(st.one_of(st.integers(1, 50), st.integers(1, 100).map(lambda p: f"{p}%")), min_size=1, max_size=5),
       st.integers(1, 200))
def test_every_host_gets_exactly_one_batch_and_no_batch_is_empty(spec, total):
    sizes = ramps.batch_sizes(spec, total)
    assert sum(sizes) == total
    assert all(size >= 1 for size in sizes)


def test_values_are_checked_and_kept_as_written():
    assert ramps.check_batch_size([1, "25%", "100%"], "x: ") == [1, "25%", "100%"]
    assert ramps.check_batch_size(3, "x: ") == 3
    assert ramps.parse_cli_batch_size("1,25%,100%") == [1, "25%", "100%"]
    assert ramps.parse_cli_batch_size("2") == 2
    assert ramps.parse_cli_batch_size("[1, 50%]") == [1, "50%"]
    assert ramps.check_batch_pause(30, "x: ") == 30.0


@pytest.mark.parametrize(("value", "words"), [
    ([0, "100%"], "0 hosts in a batch; each size must be at least 1"),
    ([1, -1], "-1 is not a number of hosts (1 or more) or a percentage like 25% (each size must be at least 1)"),
    (-1, "must be 0 (all at once) or more, got -1"),
    (["150%"], "150%: a percentage of the hosts is more than 0% and at most 100%"),
    (["0%"], "more than 0%"),
    (["abc"], "'abc' is not a number of hosts (1 or more) or a percentage like 25%"),
    ([], "an empty list"),
    (["%25"], "did you mean 25%?"),
    ([0.25], "did you mean 25%?"),
    ("1,25%,100%", "did you mean [1, 25%, 100%]?"),
    (True, "expected a number of hosts"),
])
def test_bad_sizes_are_one_line_naming_the_place_and_the_key(value, words):
    with pytest.raises(ConfigError) as error:
        ramps.check_batch_size(value, "deploy.yml:3: batch_size: ")
    assert str(error.value).startswith("deploy.yml:3: batch_size: ")
    assert words in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("text", "words"), [
    ("0", "command line: --batch-size: must be 0"),
    ("1,0", "command line: --batch-size: 0 hosts in a batch"),
    ("1,,50%", "command line: --batch-size: '' is not"),
    ("", "command line: --batch-size: an empty value"),
    ("1;25%", "command line: --batch-size: '1;25%' is not"),
])
def test_bad_sizes_on_the_command_line_name_the_option(text, words):
    if text == "0":
        assert ramps.parse_cli_batch_size(text) == 0  # 0 alone is "all at once", as before
        return
    with pytest.raises(ConfigError) as error:
        ramps.parse_cli_batch_size(text)
    assert words in str(error.value)


@pytest.mark.parametrize(("value", "words"), [(-1, "must be 0 (no pause) or more seconds"), ("30s", "did you mean 30?"),
                                              ("2m", "did you mean 120?"), ("soon", "expected a number of seconds")])
def test_bad_pauses_are_refused(value, words):
    with pytest.raises(ConfigError) as error:
        ramps.check_batch_pause(value, "deploy.yml:4: batch_pause: ")
    assert str(error.value).startswith("deploy.yml:4: batch_pause: ") and words in str(error.value)
