import ops


def test_all_lists_exactly_the_public_names():
    public = {n for n in dir(ops) if not n.startswith("_")} - {
        "archive", "engine", "errors", "dburl", "sandbox", "annotations",
    }
    assert set(ops.__all__) - {"__version__"} == public


def test_every_exported_name_resolves():
    for name in ops.__all__:
        assert getattr(ops, name) is not None
