import pytest


@pytest.fixture
def frozen(emulator):
    """The emulator with its clock stopped (advance it with ``emulator.admin.advance``)."""
    emulator.admin.clock(freeze=True)
    return emulator
