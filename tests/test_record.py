"""cwi.record: the execution record that ends every chapter."""

from cwi import record


def test_the_record_names_profile_cost_versions_and_commit():
    table = record.execution_record("smoke")["value"]
    assert table["profile"] == "smoke"
    assert table["wall time"].endswith("(since the kernel started)") and table["peak memory"].endswith("(kernel process)")
    assert float(table["peak memory"].split()[0]) > 0
    for package in record.PACKAGES:
        assert table[package] and table[package] != "not installed", package
    assert table["commit"] and not table["commit"].startswith("unknown"), "the tests run in a git checkout"
