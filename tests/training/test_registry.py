"""Settings and attacks register by name; their options come from their signatures."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import digits

import classwise
from classwise.attacks import ATTACKS, make_attack
from classwise.errors import UsageError
from classwise.registry import Registry
from classwise.training import SETTINGS, make_setting

SRC = Path(classwise.__file__).parent


def imports(path: Path, package: str) -> set[str]:
    """The ``classwise`` modules that the module at ``path`` imports, at any depth of the
    code (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # a submodule by name
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m.startswith(package)}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_training_and_attacks_import_each_other_without_a_cycle():
    modules = {module_name(p): p for p in sorted(SRC.glob("*.py"))
               + sorted(SRC.glob("training/*.py")) + sorted(SRC.glob("attacks/*.py"))}
    graph = {m: imports(p, "classwise") & set(modules) - {m} for m, p in modules.items()}

    def cycle_from(start: str, path: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph[path[-1]]:
            if nxt == start:
                return (*path, nxt)
            # a package's own __init__ imports its modules: not a cycle back into it
            if nxt not in path and not path[-1].startswith(nxt + "."):
                found = cycle_from(start, (*path, nxt))
                if found:
                    return found
        return None

    for module in modules:
        if module.startswith(("classwise.training", "classwise.attacks")):
            assert cycle_from(module, (module,)) is None, " -> ".join(cycle_from(module,
                                                                                 (module,)))


def test_the_built_in_settings_and_attacks_are_registered():
    assert SETTINGS.names() == ["adversarial", "backdoor", "natural"]
    assert ATTACKS.names() == ["badnets", "blended", "sig", "trojan", "wanet"]
    assert all(SETTINGS.get(n).name == n for n in SETTINGS.names())
    assert all(ATTACKS.get(n).name == n for n in ATTACKS.names())


SAMPLE = {"size": 4, "position": "top-left", "content": "checkerboard", "alpha": 0.5,
          "delta": 0.16, "frequency": 3.0, "k": 3, "strength": 0.7}


@pytest.mark.parametrize("attack", ATTACKS.names())
def test_every_attack_option_is_applied_and_recorded(attack):
    options = {o.name: SAMPLE[o.name] for o in ATTACKS.options(attack) if o.name in SAMPLE}
    recorded = make_attack(attack, (1, 16, 16), **options).options()
    assert set(recorded) == {"name", "seed", *(o.name for o in ATTACKS.options(attack))}
    assert {k: recorded[k] for k in options} == options


def test_every_setting_option_is_applied_and_recorded():
    given = {"natural": {}, "backdoor": {"attack": "sig", "target": 2, "poison_rate": 0.2},
             "adversarial": {"epsilon": 0.1, "pgd_steps": 3, "pgd_step_size": 0.05,
                             "random_start": False, "warmup_epochs": 0.5}}
    assert set(given) == set(SETTINGS.names())
    for name, options in given.items():
        assert {o.name for o in SETTINGS.options(name)} == set(options)
        recorded = make_setting(name, digits(), seed=0, **options).options()
        assert {k: recorded[k] for k in options} == options


class Toy:
    """A class to register: options of every kind the registry reads."""

    def __init__(self, shape: tuple[int, int], seed: int = 0, count: int = 3,
                 rate: float | None = None, flag: bool = True, where: str | Path | None = None,
                 who: int | str = 0, plain=0.5) -> None:
        self.shape, self.seed, self.count, self.rate = shape, seed, count, rate
        self.flag, self.where, self.who, self.plain = flag, where, who, plain


@pytest.fixture
def toys() -> Registry[Toy]:
    registry: Registry[Toy] = Registry("toy", fixed=("shape", "seed"))
    registry.register("toy")(Toy)
    return registry


def test_options_are_read_from_the_signature(toys):
    assert Toy.name == "toy" and toys.names() == ["toy"]
    assert [(o.name, o.type_name, o.default) for o in toys.options("toy")] == [
        ("count", "int", 3), ("rate", "float", None), ("flag", "bool", True),
        ("where", "path", None), ("who", "int or str", 0), ("plain", "float", 0.5)]
    assert toys.listing("toy") == ("valid options are count=3, rate=none, flag=true, "
                                   "where=none, who=0, plain=0.5")
    assert toys.help(width=50) == ("  toy: count=3 (int), rate=none (float),\n"
                                   "    flag=true (bool), where=none (path),\n"
                                   "    who=0 (int or str), plain=0.5 (float)")


def test_text_is_parsed_by_the_option_type(toys):
    text = {"count": "7", "rate": "0.25", "flag": "no", "where": "a/b.png", "who": "cat",
            "plain": "1e-3"}
    assert toys.parse("toy", text, "--toy-option") == {
        "count": 7, "rate": 0.25, "flag": False, "where": "a/b.png", "who": "cat",
        "plain": 0.001}
    assert toys.parse("toy", {"rate": "None", "where": "none"}, "--x") == {"rate": None,
                                                                           "where": None}
    for words, value in ((("true", "1", "yes", "YES"), True), (("false", "0", "no"), False)):
        for word in words:
            assert toys.parse("toy", {"flag": word}, "--x") == {"flag": value}


@pytest.mark.parametrize("given, message", [
    ({"count": "2.5"}, r"^--toy-option count=2.5: '2.5' is not a whole number \(int "
                       r"expected\); valid options are count=3, rate=none, flag=true, "
                       "where=none, who=0, plain=0.5$"),
    ({"rate": "fast"}, r"^--toy-option rate=fast: 'fast' is not a number \(float expected\)"),
    ({"rate": "nan"}, "'nan' is not a finite number"),
    ({"flag": "maybe"}, r"'maybe' is not true or false \(also yes/no, 1/0\) \(bool "
                        r"expected\)"),
    ({"count": "none"}, "'none' is not a whole number"),
    ({"size": "3"}, "^--toy-option size: unknown option for toy toy; valid options are "
                    "count=3, rate=none,"),
])
def test_bad_text_is_one_line_naming_the_option_and_the_valid_ones(toys, given, message):
    with pytest.raises(UsageError, match=message) as err:
        toys.parse("toy", given, "--toy-option")
    assert "\n" not in str(err.value)


def test_create_checks_names_and_passes_the_fixed_arguments(toys):
    toy = toys.create("toy", (2, 2), seed=4, count=5)
    assert (toy.shape, toy.seed, toy.count) == ((2, 2), 4, 5)
    with pytest.raises(UsageError, match="^unknown option 'cuont' for toy toy; valid options "
                                         "are count=3,"):
        toys.create("toy", (2, 2), cuont=5)
    with pytest.raises(UsageError, match="^unknown toy 'boat'; choose one of toy$"):
        toys.create("boat", (2, 2))


def test_a_setting_without_options_says_it_takes_none():
    with pytest.raises(UsageError, match="^unknown option 'epsilon' for setting natural; it "
                                         "takes none$"):
        make_setting("natural", digits(), seed=0, epsilon=0.3)
