import pytest

from tests.chart.helpers import render_chart


@pytest.fixture(scope="session")
def default_docs():
    """The full chart with default values (rendered once for the session)."""
    return render_chart()
