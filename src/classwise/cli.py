"""The ``classwise`` command: a thin shell that parses, seeds and calls one API function each.

``train`` -> :func:`classwise.train`, ``reveal`` -> :func:`classwise.reveal`,
``evaluate`` -> :func:`classwise.evaluate`, ``scan`` -> :func:`classwise.scan`,
``compare`` -> :func:`classwise.compare`, ``merge`` -> :func:`classwise.merge`,
``demo`` -> :func:`classwise.demo`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from classwise.errors import ClasswiseError, UsageError
from classwise.search.config import PRESETS

Handler = Callable[[argparse.Namespace], None]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see '{self.prog} --help'")


def _model_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    p.add_argument("--model", required=True, nargs="+" if several else None,
                   help="TorchScript file, a 'classwise train' folder, file.py:FACTORY, "
                        "module:FACTORY, torchvision:NAME or timm:NAME" + (
                            "; several TorchScript files or train folders audit a model zoo, "
                            "one subfolder of --out each" if several else ""))
    p.add_argument("--weights", help="state_dict (.pt, .pth, .safetensors) for a factory model")
    p.add_argument("--mean", type=float, nargs="+", help="normalisation mean the model expects, "
                   "in [0, 1] units (applied inside a wrapper)")
    p.add_argument("--std", type=float, nargs="+", help="normalisation std the model expects")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="mnist5k, digits, shapes, an .npz file, an "
                   "image folder with train/ and test/, or a CIFAR python folder")
    p.add_argument("--image-size", type=int, help="resize and centre-crop folder images to this")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the run's own random "
                   "generators (your global ones are left alone)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: a GPU when present)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _out(p: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    p.add_argument("--out", required=required, default=default,
                   help="output folder" + (" (default: %(default)s)" if default else ""))
    p.add_argument("--force", action="store_true", help="overwrite a non-empty --out")


def _executor_args(p: argparse.ArgumentParser, what: str) -> argparse._ArgumentGroup:
    g = p.add_argument_group("scale-out")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help=f"{what} (pip install 'classwise[ray]')")
    g.add_argument("--ray-address", help="address of a running Ray cluster (default: start a "
                   "local one)")
    return g


def _sources(args: argparse.Namespace):
    """The model and data the arguments name, as sources any process can open."""
    from classwise.sources import data_source, model_source

    model = args.model if isinstance(args.model, str) else args.model[0]
    return (model_source(model, args.weights, args.mean, args.std),
            data_source(args.data, args.image_size))


def _load(args: argparse.Namespace):
    """The model and data the arguments name, opened here."""
    model, data = _sources(args)
    opened = data.open()
    return model.open(opened, args.device), opened


def _finish(result: Any, out: Path) -> None:
    from classwise.runs import summary_table

    print(summary_table(result.records))
    result.save(out)
    print(f"wrote {out} (open {out / 'report.html'})")


# -- train -------------------------------------------------------------------------------

OPTION_FLAGS = {
    "backdoor setting": (
        ("--attack", "attack", str, "the attack, one of those listed below"),
        ("--target", "target", str, "the backdoor's target class"),
        ("--poison-rate", "poison_rate", float, "share of images poisoned (default: the "
         "attack's)"),
        ("--trigger", "trigger_file", str, "trigger PNG whose alpha is the mask"),
        ("--trigger-size", "size", int, "patch size in pixels"),
        ("--trigger-position", "position", str, "bottom-right, top-left, top-right, "
         "bottom-left, center or X,Y"),
        ("--trigger-content", "content", str, "white or checkerboard (BadNets)"),
        ("--blend-alpha", "alpha", float, "Blended mixing ratio"),
    ),
    "adversarial setting": (
        ("--epsilon", "epsilon", float, "L-inf radius in [0, 1] pixels (default 0.3 grey, "
         "8/255 colour)"),
        ("--pgd-steps", "pgd_steps", int, "PGD steps per training batch"),
        ("--pgd-step-size", "pgd_step_size", float, "PGD step size"),
    ),
}
"""Dedicated flags of common options: (flag, option, type, help) by help group. Each is
short for ``--setting-option`` or ``--attack-option OPTION=VALUE``."""


class Help(argparse.RawDescriptionHelpFormatter):
    """A flag's default at the end of its help, once: left out where the help already says
    it, and where there is none to say (no default, a switch, a required flag). Epilogs are
    printed as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.required or action.default is None
                or action.default is False or action.default is argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def add_train(sub: argparse._SubParsersAction) -> Handler:
    from classwise.attacks import ATTACKS
    from classwise.models import architectures
    from classwise.training import SETTINGS

    epilog = (f"setting options (--setting-option NAME=VALUE), with their defaults:\n"
              f"{SETTINGS.help()}\nattack options (--attack-option NAME=VALUE), with their "
              f"defaults:\n{ATTACKS.help()}\nVALUE none leaves an option unset; a bool is "
              "true/false, yes/no or 1/0.")
    p = sub.add_parser("train", help="train a built-in architecture (natural, backdoor, "
                       "adversarial)", formatter_class=Help, epilog=epilog)
    _data_args(p)
    p.add_argument("--arch", choices=architectures(), metavar="ARCH",
                   help=f"one of {', '.join(architectures())} (default: small-cnn up to 28x28 "
                   "px, resnet18 above)")
    p.add_argument("--setting", default="natural", choices=SETTINGS.names())
    p.add_argument("--setting-option", action="append", metavar="NAME=VALUE",
                   help="an option of the setting (repeatable; listed below)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--augment", action="store_true", help="train on images moved by up to 2 "
                   "pixels in x and y (random translation, no flips)")
    groups = {title: p.add_argument_group(title) for title in OPTION_FLAGS}
    for title, flags in OPTION_FLAGS.items():
        for flag, option, kind, text in flags:
            groups[title].add_argument(flag, dest=option, type=kind, help=text)
    groups["backdoor setting"].add_argument(
        "--attack-option", action="append", metavar="NAME=VALUE",
        help="an option of the attack (repeatable; listed below)")
    _common(p)
    _out(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted training "
                   "in --out (give the same arguments)")
    return run_train


def run_train(args: argparse.Namespace) -> None:
    from classwise.data import load_data
    from classwise.runs import check_out
    from classwise.training import train

    out = check_out(args.out, args.force, args.resume)
    options = _train_options(args)
    data = load_data(args.data, image_size=args.image_size)
    result = train(data, arch=args.arch, setting=args.setting, epochs=args.epochs,
                   seed=args.seed, out=out, batch_size=args.batch_size, lr=args.lr,
                   device=args.device, show_progress=not args.no_progress,
                   augment=args.augment, resume=args.resume, **options)
    meta = result.meta
    extra = "".join(f", {k.replace('_', ' ')} {meta[k]:.3f}" for k in
                    ("attack_success_rate", "robust_accuracy") if k in meta)
    print(f"clean test accuracy {meta['clean_test_accuracy']:.3f}{extra} "
          f"({meta['seconds']:.0f} s); wrote {out}")


def _train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The setting's options from the dedicated flags, ``--setting-option`` and
    ``--attack-option``, typed and checked against the setting's and attack's signatures."""
    from classwise.attacks import ATTACKS
    from classwise.training import SETTINGS

    own = {o.name for o in SETTINGS.options(args.setting)}
    if "attack" in own:  # the setting hands its attack's options on
        own |= {o.name for name in ATTACKS.names() for o in ATTACKS.options(name)}
    flags = {option: (flag, getattr(args, option)) for group in OPTION_FLAGS.values()
             for flag, option, _, _ in group if getattr(args, option) is not None}
    stray = [flag for option, (flag, _) in flags.items() if option not in own]
    if stray:
        raise UsageError(f"{', '.join(stray)} do(es) not apply to --setting {args.setting}; "
                         "drop them or change the setting")
    options = {option: value for option, (_, value) in flags.items()}
    given = SETTINGS.parse(args.setting, _pairs(args.setting_option or [], "--setting-option"),
                           "--setting-option")
    _merge(options, given, "--setting-option")
    if args.attack_option:
        if "attack" not in own:
            raise UsageError(f"--attack-option does not apply to --setting {args.setting}; "
                             "drop it or use --setting backdoor")
        if options.get("attack") is None:
            raise UsageError("--attack-option needs an attack; add --attack, one of "
                             f"{', '.join(ATTACKS.names())}")
        given = ATTACKS.parse(options["attack"], _pairs(args.attack_option, "--attack-option"),
                              "--attack-option")
        _merge(options, given, "--attack-option")
    return options


def _pairs(texts: list[str], flag: str) -> dict[str, str]:
    """``NAME=VALUE`` texts of ``flag`` as a dict; each name once."""
    pairs: dict[str, str] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{flag} {text!r} is not NAME=VALUE; e.g. {flag} frequency=6")
        if name.strip() in pairs:
            raise UsageError(f"{flag} {name.strip()} is given twice; give it once")
        pairs[name.strip()] = value
    return pairs


def _merge(options: dict[str, Any], given: dict[str, Any], flag: str) -> None:
    """Add ``given`` (from ``flag``) to ``options``; an option given both ways is refused."""
    twice = sorted(set(options) & set(given))
    if twice:
        raise UsageError(f"{twice[0]} is given both by its own flag and by {flag}; give it "
                         "once")
    options.update(given)


# -- reveal ------------------------------------------------------------------------------

def add_reveal(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("reveal", help="find every class's pattern and its predictive power",
                       formatter_class=Help)
    _model_args(p)
    _data_args(p)
    p.add_argument("--classes", default="all", help="all, or a list such as 0,3,7 (or names)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--budget", type=float, help="share of pixels kept (default 0.05; the "
                      "paper preset keeps its own 50 of 32x32 and 2,500 of 224x224 pixels)")
    size.add_argument("--pixels", type=int, help="number of pixels kept")
    p.add_argument("--preset", default="default", choices=list(PRESETS),
                   help="default, fast (fewer canvas candidates: about half the search "
                   "time), thorough (default plus the top-down search, per class the better) "
                   "or paper (the published algorithm)")
    p.add_argument("--canvas", help="auto (screen candidates of the class), index:N (its N-th "
                   "canvas-pool image), solid:V (V in [0, 1], white, black) or noise, joined by "
                   "'+' (default: the preset's)")
    p.add_argument("--max-batch", type=int, help="search images per forward pass "
                   "(default: from the image size)")
    p.add_argument("--curve", action="store_true", help="also measure each class's budget "
                   "curve (its mask cut at 1/4, 1/2, 2 and 4 times the budget): four more "
                   "passes over the test split per class")
    g = p.add_argument_group("search length (default: the preset's)")
    g.add_argument("--epochs", type=float, help="passes over each class's search images")
    g.add_argument("--max-steps", type=int, help="steps per search instead of epochs")
    g.add_argument("--search-images", type=int, help="search images per class (the paper "
                   "preset's 1,800; every one with --search-images 0)")
    _common(p)
    _out(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    g = _executor_args(p, "fan chunks of classes out over a Ray cluster")
    g.add_argument("--shard", help="I/N: search every N-th class from the I-th; join the "
                   "shards with 'classwise merge'")
    return run_reveal


def run_reveal(args: argparse.Namespace) -> None:
    from classwise.reveal import reveal
    from classwise.runs import check_out
    from classwise.search.checkpoint import DIRNAME

    out = check_out(args.out, args.force, args.resume)
    model, data = _sources(args)
    if args.force and not args.resume:
        shutil.rmtree(out / DIRNAME, ignore_errors=True)
    result = reveal(model, data, classes=args.classes, budget=args.budget, pixels=args.pixels,
                    preset=args.preset, canvas=args.canvas, seed=args.seed, device=args.device,
                    max_batch=args.max_batch, show_progress=not args.no_progress,
                    model_name=args.model, checkpoint=out / DIRNAME, resume=args.resume,
                    shard=args.shard, executor=args.executor, ray_address=args.ray_address,
                    curve=args.curve, epochs=args.epochs, max_steps=args.max_steps,
                    search_images=args.search_images)
    _finish(result, out)
    shutil.rmtree(out / DIRNAME, ignore_errors=True)


# -- evaluate ----------------------------------------------------------------------------

def add_evaluate(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("evaluate", help="measure saved patterns on another model or dataset",
                       formatter_class=Help)
    p.add_argument("--patterns", required=True, help="a run folder written by reveal or scan")
    _model_args(p)
    _data_args(p)
    _common(p)
    _out(p)
    return run_evaluate


def run_evaluate(args: argparse.Namespace) -> None:
    from classwise.evaluation.transfer import evaluate
    from classwise.runs import check_out

    out = check_out(args.out, args.force)
    model, data = _load(args)
    _finish(evaluate(args.patterns, model, data, seed=args.seed, model_name=args.model), out)


# -- demo --------------------------------------------------------------------------------

def add_demo(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("demo", help="train (or reuse) a small CNN on mnist5k and reveal all "
                       "10 classes at 5%%", formatter_class=Help)
    p.add_argument("--out", default="runs/demo", help="folder for the model and the run")
    _common(p)
    return run_demo


def run_demo(args: argparse.Namespace) -> None:
    from classwise.demo import demo
    from classwise.runs import summary_table

    out = Path(args.out)
    result = demo(out, seed=args.seed, device=args.device, show_progress=not args.no_progress)
    print(summary_table(result.records))
    print(f"wrote {out / 'model'} and {out / 'reveal'} "
          f"(open {out / 'reveal' / 'report.html'})")


# -- merge -------------------------------------------------------------------------------

def add_merge(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("merge", help="join the run folders of shards into one run",
                       formatter_class=Help)
    p.add_argument("runs", nargs="+", help="run folders written by reveal --shard I/N")
    _out(p)
    return run_merge


def run_merge(args: argparse.Namespace) -> None:
    from classwise.reveal import merge
    from classwise.runs import check_out, summary_table

    out = check_out(args.out, args.force)
    result = merge(args.runs, out)
    print(summary_table(result.records))
    print(f"wrote {out} (open {out / 'report.html'})")


# -- scan --------------------------------------------------------------------------------

def add_scan(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("scan", help="decide whether a model is backdoored, and which class is "
                       "the target", formatter_class=Help)
    _model_args(p, several=True)
    _data_args(p)
    p.add_argument("--method", default="classwise", choices=["classwise", "neural-cleanse",
                                                              "mm-bd"],
                   help="classwise (pattern sizes), or the baselines neural-cleanse and mm-bd")
    p.add_argument("--reference", nargs="+", metavar="DIR", help="classwise scan folders of "
                   "clean models of the same data: compare each class with the same class "
                   "there (median over several) instead of with the other classes")
    p.add_argument("--families", type=lambda text: [n.strip() for n in text.split(",")],
                   help="dense pattern families searched beside the pixel patch, comma-"
                   "separated (classwise method; default additive,warp): additive for "
                   "Blended- and SIG-like triggers, warp for WaNet-like ones; 'pixels' for "
                   "the patch alone")
    _common(p)
    _out(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted scan in "
                   "--out")
    _executor_args(p, "fan the models out over a Ray cluster")
    return run_scan


def run_scan(args: argparse.Namespace) -> None:
    from classwise.runs import check_out
    from classwise.scan import scan, scan_models
    from classwise.search.checkpoint import DIRNAME

    out = check_out(args.out, args.force, args.resume)
    model, data = _sources(args)
    if len(args.model) > 1 or args.executor == "ray":
        if args.weights or args.mean or args.std:
            raise UsageError("a scan of several models opens each model file as it is; drop "
                             "--weights/--mean/--std or scan one model at a time")
        rows = scan_models(args.model, data, out, method=args.method, seed=args.seed,
                           device=args.device, executor=args.executor,
                           ray_address=args.ray_address, resume=args.resume,
                           show_progress=not args.no_progress, reference=args.reference,
                           families=args.families)
        flagged = [r["folder"] for r in rows if r["verdict"] == "backdoored"]
        print(f"{len(rows)} models scanned, {len(flagged)} backdoored"
              f"{': ' + ', '.join(flagged) if flagged else ''}; see {out / 'zoo.json'}")
        return
    if args.force and not args.resume:
        shutil.rmtree(out / DIRNAME, ignore_errors=True)
    result = scan(model, data, method=args.method, seed=args.seed, device=args.device,
                  show_progress=not args.no_progress, model_name=args.model[0],
                  reference=args.reference, checkpoint=out / DIRNAME, resume=args.resume,
                  families=args.families)
    result.save(out)
    shutil.rmtree(out / DIRNAME, ignore_errors=True)
    print(result.verdict_line(out))


# -- compare -----------------------------------------------------------------------------

def add_compare(sub: argparse._SubParsersAction) -> Handler:
    p = sub.add_parser("compare", help="put runs of the same data side by side (natural vs "
                       "adversarial, clean vs backdoored)",
                       formatter_class=Help)
    p.add_argument("runs", nargs="+", help="run folders written by reveal or scan")
    p.add_argument("--labels", nargs="+", help="one label per run (default: from the runs)")
    _out(p)
    return run_compare


def run_compare(args: argparse.Namespace) -> None:
    from classwise.compare import compare
    from classwise.runs import check_out

    out = check_out(args.out, args.force)
    result = compare(args.runs, labels=args.labels)
    result.save(out)
    print(f"wrote {out} (open {out / 'report.html'})")


COMMANDS = (add_train, add_reveal, add_evaluate, add_scan, add_compare, add_merge, add_demo)


def build_parser() -> tuple[Parser, dict[str, Handler]]:
    parser = Parser(prog="classwise", description="Reveal what an image classifier has "
                    "learned, class by class, in pixel space.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    handlers = {}
    for add in COMMANDS:
        handler = add(sub)
        handlers[handler.__name__.removeprefix("run_")] = handler
    return parser, handlers


RESUME = "finished work is saved: rerun the same command with --resume to continue"
INTERRUPTED = {"train": RESUME, "reveal": RESUME, "scan": RESUME,
               "demo": "finished work is saved: rerun classwise demo to continue"}
"""What Ctrl-C leaves, per command (a command not named here saves nothing)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 2 usage error, 1 run-time failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser, handlers = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        handlers[args.command](args)
        return 0
    except ClasswiseError as e:
        if debug:
            traceback.print_exc()
        print(f"classwise: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"classwise: interrupted; {INTERRUPTED.get(command, 'nothing was saved')}",
              file=sys.stderr)
        return 130
    except Exception as e:  # a bug or an unforeseen input: one line unless --debug
        if debug:
            traceback.print_exc()
        from classwise.models.factory import describe

        print(f"classwise: error: {type(e).__name__}: {describe(e)} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
