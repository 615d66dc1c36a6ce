"""``classwise train``: every option of every setting and attack from the command line,
--augment, and --resume after a real Ctrl-C from outside the process."""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest
import torch
from helpers import classwise_child, digits
from PIL import Image

from classwise.attacks import ATTACKS
from classwise.cli import build_parser, main
from classwise.training import SETTINGS, make_setting, train

SAMPLE = {"size": "4", "position": "top-left", "content": "checkerboard", "alpha": "0.5",
          "delta": "0.16", "frequency": "3", "k": "3", "strength": "0.7",
          "epsilon": "0.1", "pgd_steps": "3", "pgd_step_size": "0.05", "random_start": "false",
          "warmup_epochs": "0.5", "target": "2", "poison_rate": "0.2"}
"""A value other than the default for each option given as text (files aside)."""


def options_from(argv: list[str]) -> dict:
    """The options ``classwise train ARGV`` hands to :func:`classwise.train`."""
    from classwise.cli import _train_options

    parser, _ = build_parser()
    return _train_options(parser.parse_args(["train", "--data", "digits", "--out", "x",
                                             *argv]))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """A trigger PNG with an alpha channel and a plain pattern picture."""
    root = tmp_path_factory.mktemp("pngs")
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., 0], rgba[1:, 1:, 3] = 255, 255
    Image.fromarray(rgba, "RGBA").save(root / "trigger.png")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(root / "pattern.png")
    return {"trigger_file": str(root / "trigger.png"), "pattern_file": str(root / "pattern.png")}


@pytest.mark.parametrize("attack", ATTACKS.names())
def test_every_attack_option_reaches_the_setting_and_its_record(attack, pngs):
    given = {o.name: {**SAMPLE, **pngs}[o.name] for o in ATTACKS.options(attack)}
    if "trigger_file" in given:  # a PNG trigger replaces the built-in patch's size, content
        given = {k: v for k, v in given.items() if k not in ("size", "content")}
    argv = ["--setting", "backdoor", "--attack", attack, "--target", "3"]
    argv += [a for k, v in given.items() for a in ("--attack-option", f"{k}={v}")]
    options = options_from(argv)
    typed = {o.name: o.parse(given[o.name]) for o in ATTACKS.options(attack) if o.name in given}
    assert options == {"attack": attack, "target": "3", **typed}
    recorded = make_setting("backdoor", digits(), seed=0, **options).options()
    assert {k: recorded[k] for k in typed} == typed


@pytest.mark.parametrize("setting", SETTINGS.names())
def test_every_setting_option_reaches_the_setting_and_its_record(setting):
    given = {o.name: SAMPLE[o.name] for o in SETTINGS.options(setting) if o.name != "attack"}
    argv = ["--setting", setting, *(["--attack", "sig"] if setting == "backdoor" else [])]
    argv += [a for k, v in given.items() for a in ("--setting-option", f"{k}={v}")]
    options = options_from(argv)
    expected = {o.name: o.parse(given[o.name]) for o in SETTINGS.options(setting)
                if o.name in given}
    if setting == "backdoor":
        expected["target"] = 2  # "2" is the class named 2
    recorded = make_setting(setting, digits(), seed=0, **options).options()
    assert {k: recorded[k] for k in expected} == expected


def test_dedicated_flags_feed_the_same_options():
    assert options_from(["--setting", "adversarial", "--epsilon", "0.1", "--pgd-steps", "3",
                         "--pgd-step-size", "0.05"]) == \
        options_from(["--setting", "adversarial", "--setting-option", "epsilon=0.1",
                      "--setting-option", "pgd_steps=3", "--setting-option",
                      "pgd_step_size=0.05"])
    assert options_from(["--setting", "backdoor", "--attack", "badnets", "--trigger-size", "2",
                         "--trigger-position", "center", "--target", "1"]) == \
        {"attack": "badnets", "size": 2, "position": "center", "target": "1"}


def test_options_are_recorded_in_meta_json(tmp_path, capsys):
    sig, adv = tmp_path / "sig", tmp_path / "adv"
    quick = ["--data", "digits", "--epochs", "1", "--batch-size", "128", "--no-progress",
             "--device", "cpu"]
    assert main(["train", *quick, "--setting", "backdoor", "--attack", "sig", "--target", "2",
                 "--attack-option", "frequency=3", "--attack-option", "delta=0.16",
                 "--out", str(sig)]) == 0
    assert main(["train", *quick, "--setting", "adversarial", "--pgd-steps", "1", "--augment",
                 "--setting-option", "random_start=false", "--setting-option",
                 "warmup_epochs=0.5", "--out", str(adv)]) == 0
    sig_meta = json.loads((sig / "meta.json").read_text())
    assert sig_meta["setting_options"] == {"attack": "sig", "target": 2, "poison_rate": 0.3,
                                           "delta": 0.16, "frequency": 3.0}
    assert sig_meta["augment"] is False
    adv_meta = json.loads((adv / "meta.json").read_text())
    assert adv_meta["setting_options"] == {"epsilon": 0.3, "pgd_steps": 1,
                                           "pgd_step_size": 0.75, "random_start": False,
                                           "warmup_epochs": 0.5}
    assert adv_meta["augment"] is True
    assert not (sig / ".checkpoint").exists() and not (adv / ".checkpoint").exists()


@pytest.mark.parametrize("argv, says", [
    (["--setting", "backdoor", "--attack", "sig", "--attack-option", "freq=3"],
     "--attack-option freq: unknown option for attack sig; valid options are delta=0.0784314, "
     "frequency=6"),
    (["--setting", "backdoor", "--attack", "wanet", "--attack-option", "k=4.5"],
     "--attack-option k=4.5: '4.5' is not a whole number (int expected); valid options are "
     "k=4, strength=0.5"),
    (["--setting", "adversarial", "--setting-option", "random_start=maybe"],
     "--setting-option random_start=maybe: 'maybe' is not true or false (also yes/no, 1/0) "
     "(bool expected); valid options are epsilon=none, pgd_steps=7, pgd_step_size=none, "
     "random_start=true, warmup_epochs=1"),
    (["--setting-option", "epsilon=0.3"],
     "--setting-option epsilon: unknown option for setting natural; it takes none"),
    (["--setting", "adversarial", "--setting-option", "epsilon"],
     "--setting-option 'epsilon' is not NAME=VALUE; e.g. --setting-option frequency=6"),
    (["--setting", "adversarial", "--epsilon", "0.1", "--setting-option", "epsilon=0.2"],
     "epsilon is given both by its own flag and by --setting-option; give it once"),
    (["--setting", "backdoor", "--attack", "sig", "--attack-option", "delta=0.1",
      "--attack-option", "delta=0.2"], "--attack-option delta is given twice; give it once"),
    (["--attack-option", "delta=0.1"],
     "--attack-option does not apply to --setting natural; drop it or use --setting backdoor"),
    (["--setting", "backdoor", "--attack-option", "delta=0.1"],
     "--attack-option needs an attack; add --attack, one of badnets, blended, sig, trojan, "
     "wanet"),
    (["--setting", "backdoor", "--attack", "sig", "--epsilon", "0.1"],
     "--epsilon do(es) not apply to --setting backdoor; drop them or change the setting"),
    (["--trigger-size", "3", "--target", "2"],
     "--target, --trigger-size do(es) not apply to --setting natural; drop them or change "
     "the setting"),
    (["--setting", "backdoor", "--attack", "badnets", "--blend-alpha", "0.3"],
     "unknown option 'alpha' for attack badnets; valid options are size=none, "
     "position=bottom-right, content=white, trigger_file=none"),
])
def test_bad_options_are_one_line_and_write_nothing(argv, says, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["train", "--data", "digits", "--epochs", "1", "--no-progress", *argv,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"classwise: error: {says}\n"
    assert not out.exists()


def test_help_lists_every_option_of_every_setting_and_attack(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for registry in (SETTINGS, ATTACKS):
        for name in registry.names():
            described = ", ".join(f"{o} ({o.type_name})" for o in registry.options(name))
            assert f"{name}: {described or 'no options'}" in text
    for flag in ("--setting-option NAME=VALUE", "--attack-option NAME=VALUE", "--augment",
                 "--resume"):
        assert flag in text


def test_resume_refusals_are_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", "digits", "--epochs", "1", "--no-progress", "--out", str(out)]
    assert main([*argv, "--resume"]) == 2
    assert capsys.readouterr().err == (f"classwise: error: nothing to resume in {out}; drop "
                                       "--resume\n")
    checkpoint = out / ".checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "run.json").write_text(json.dumps({"data": "digits", "epochs": 2}))
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"classwise: error: {out} holds an interrupted training with other "
                          "settings: ") and "epochs (2 there, 1 here)" in err
    assert err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == [".checkpoint"]
    assert main(argv) == 2
    assert "it holds an interrupted run: add --resume to continue it" in capsys.readouterr().err


def test_the_command_resumes_after_a_real_ctrl_c_to_the_same_weights(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--data", "digits", "--epochs", "6", "--batch-size", "16", "--device",
            "cpu", "--no-progress", "--out", str(out)]
    child = classwise_child(*argv)
    state = out / ".checkpoint" / "state.pt"
    deadline = time.monotonic() + 120
    while not state.is_file() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGINT)  # during the second epoch
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert err.splitlines()[-1] == ("classwise: interrupted; finished work is saved: rerun the "
                                    "same command with --resume to continue")
    assert not (out / "model.pt").exists()
    saved = torch.load(state, weights_only=True)
    assert 1 <= saved["epoch"] < 6
    resumed = classwise_child(*argv, "--resume")
    stdout, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert stdout.startswith("clean test accuracy") and not (out / ".checkpoint").exists()
    weights = torch.load(out / "model.pt", weights_only=True)
    reference = train(digits(), epochs=6, batch_size=16, device="cpu", show_progress=False)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(weights[name], tensor), name
