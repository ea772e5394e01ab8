"""The README documents every environment variable the settings read."""

from __future__ import annotations

import re

from tests.harness import REPO


def test_every_setting_variable_is_in_the_readme():
    source = (REPO / "meshsite" / "settings.py").read_text()
    names = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', source))
    readme = (REPO / "README.md").read_text()
    table = readme.split("<!-- env-table:start -->")[1].split("<!-- env-table:end -->")[0]
    missing = sorted(name for name in names if f"`{name}`" not in table)
    assert len(names) > 10
    assert not missing, f"add these to the README's environment table: {missing}"
