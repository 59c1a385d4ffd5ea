import types

import ops


def test_all_lists_exactly_the_public_names():
    # Submodules become attributes once anything imports them; they are not the API.
    public = {
        n for n, v in vars(ops).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }
    assert set(ops.__all__) - {"__version__"} == public


def test_every_exported_name_resolves():
    for name in ops.__all__:
        assert getattr(ops, name) is not None
