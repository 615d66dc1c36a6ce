"""Fixtures shared by the scan tests: the digits data and the poisoned model."""

import helpers
import pytest


@pytest.fixture(scope="module")
def digits():
    return helpers.digits()


@pytest.fixture(scope="module")
def poisoned_model():
    """The tiny poisoned model, checked to be really backdoored."""
    result = helpers.poisoned()
    assert result.meta["attack_success_rate"] >= 0.8
    return result.model
