"""Fixtures shared by the scan tests: the digits data and the poisoned model."""

import helpers
import pytest


@pytest.fixture(scope="module")
def digits():
    return helpers.digits()
