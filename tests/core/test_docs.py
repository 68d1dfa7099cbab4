"""Generated pages must match their sources."""

from pipelines.generated_docs import GENERATED_PAGES


def test_generated_pages_are_up_to_date():
    for path, render in GENERATED_PAGES.items():
        assert path.read_text() == render(), f"{path} is stale: run `make docs`"
