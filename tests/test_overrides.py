"""`-S key=value` overrides: every mistake is one line naming the override and what is wrong, exit 2,
never a traceback, for `dfcil -S` and for the params.yaml that `dvc exp run -S` writes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfcil_core.__main__ import main
from dfcil_core.foundations import config
from dfcil_core.foundations.config import explicit_params
from dfcil_core.foundations.errors import DfcilError


@pytest.mark.parametrize("override,line", [
    # a quoting slip in a shell script: the quotes reach the override
    ("'train.milestones=[a]'", "dfcil: error: override \"'train.milestones=[a]'\": the value \"[a]'\" is not valid "
                               "YAML (found unexpected end of stream); quote a string value, e.g. -S 'name=\"a b\"'"),
    ("data=[1", "dfcil: error: override 'data=[1': the value '[1' is not valid YAML (expected ',' or ']', but got "
                "'<stream end>'); quote a string value, e.g. -S 'name=\"a b\"'"),
    ("=3", "dfcil: error: override '=3': empty key"),
    ("train..lr=0.1", "dfcil: error: override 'train..lr=0.1': empty part in the key 'train..lr'"),
    ("train.lr", "dfcil: error: override 'train.lr': expected key=value"),
    ("train.momentun=0.9", "dfcil: error: override 'train.momentun=0.9': train.momentun: unknown key"),
    ("train.lr=fast", "dfcil: error: override 'train.lr=fast': train.lr: Input should be a valid number, "
                      "unable to parse string as a number"),
    ("seed.x=1", "dfcil: error: override 'seed.x=1': seed: Input should be a valid integer"),
    ("train.milestones=[3, 1]", "dfcil: error: override 'train.milestones=[3, 1]': train.milestones must be "
                                "increasing positive epochs"),
    ("data.n_tasks=3", "dfcil: error: override 'data.n_tasks=3': data.n_tasks: 3 tasks do not divide 4 classes"),
    ("methods=[ewc]", "dfcil: error: override 'methods=[ewc]': methods: unknown method 'ewc' (known: upper_bound, "
                      "base, lwf, lwf_mc, lwf_syn, deepinversion, abd, rdfcil, rehearsal, lwf_coreset, e2e, bic, dgr)"),
])
def test_each_override_mistake_is_one_line_naming_it(override, line, capsys):
    assert main(["config", "--preset", "tiny", "-S", override]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [line]


def test_the_last_override_of_a_key_is_the_one_named():
    with pytest.raises(DfcilError, match=r"^override 'train.lr=-1': train.lr: Input should be greater than 0$"):
        config.load(preset="tiny", overrides=["train.lr=0.5", "train.lr=-1"])


def test_a_mistake_in_the_file_is_not_blamed_on_an_override(tmp_path):
    raw = explicit_params(config.load(preset="tiny"))
    raw["train"]["lr"] = "fast"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DfcilError, match=r"^invalid config: train.lr: Input should be a valid number"):
        config.load(tmp_path / "params.yaml", overrides=["train.momentum=0.5"])


def test_a_bad_value_from_dvc_exp_run_is_one_line_of_the_stage(tmp_path):
    """`dvc exp run -S train.lr=fast` writes the value into params.yaml; the stage's `dfcil` command
    then says what is wrong in one line and exits 2 (DVC shows it and stops)."""
    raw = explicit_params(config.load(preset="tiny"))
    raw["train"]["lr"] = "fast"
    raw["train"]["momentun"] = 0.9
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    r = subprocess.run([sys.executable, "-m", "dfcil_core", "split", "--config", "params.yaml", "--out", "o"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == ["dfcil: error: invalid config: train.lr: Input should be a valid number, "
                                     "unable to parse string as a number"]
    assert not (tmp_path / "o").exists()


_KEYS = st.sampled_from(["seed", "train.lr", "train.milestones", "train.task_epochs", "train.task_epochs.2",
                         "data.n_tasks", "methods", "model", "model.arch", "synthesis", "abd.local_ce", "name",
                         "runtime.device", "nope", "train.nope.deeper", ""])
_VALUES = st.one_of(st.text(max_size=20), st.sampled_from(["[", "]", "{a: 1}", "[1, 2]", "!!python/object:os.system",
                                                           "&a [*a]", "1e400", "-1", "null", "~", "'", "\"", ":",
                                                           "- a", "{", "0x10", "\x00", "\t"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides=st.lists(st.one_of(st.text(max_size=30), st.builds(lambda k, v: f"{k}={v}", _KEYS, _VALUES)),
                          min_size=1, max_size=3))
def test_random_overrides_never_give_a_traceback(overrides, capsys):
    args = ["config", "--preset", "tiny", *(f"--set={o}" for o in overrides)]  # any text, '-' first too
    rc = main(args)  # any exception other than the CLI's own handling fails the test
    err = capsys.readouterr().err
    assert rc in (0, 2)
    if rc == 2:
        assert len(err.splitlines()) == 1 and err.startswith("dfcil: error: "), err


def test_an_error_echoing_a_separator_stays_one_line(capsys):
    """A key holding a record separator (\\x1e, a line break to str.splitlines) is echoed escaped."""
    assert main(["config", "--preset", "tiny", "--set=0\x1e0="]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == ["dfcil: error: invalid config: 0\\x1e0: unknown key"]
