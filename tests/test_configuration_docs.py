"""docs/configuration.md lists every option default_callbacks takes."""

from pathlib import Path

import lightning_sanity


def test_every_option_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [name for name in lightning_sanity.available_options() if f"`{name}`" not in text]
    assert not missing, f"options missing from docs/configuration.md: {missing}"


def test_every_threshold_is_documented_with_its_default():
    text = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [
        (check, name) for check, specs in lightning_sanity.available_thresholds().items() for name, spec in specs.items()
        if f"| `{check}` | `{name}` | `{spec.default:g}` |" not in text
    ]
    assert not missing, f"thresholds missing from docs/configuration.md (or with another default): {missing}"
