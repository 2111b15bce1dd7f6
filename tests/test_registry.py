"""The one registry class: duplicates refused, unknown names answered with close matches, lazy loading."""

import sys

import pytest

from synth.errors import InputError, SpaceError
from synth.registry import DuplicateName, Registry


def test_register_get_and_list():
    ops = Registry("op")
    ops.register("add", len)

    @ops.register("mul")
    def mul(a, b):
        return a * b

    assert ops.get("mul") is mul and ops.get("add") is len
    assert ops.names() == ["add", "mul"] and list(ops) == ["add", "mul"] and len(ops) == 2 and "add" in ops
    assert ops.items() == [("add", len), ("mul", mul)]


def test_a_name_taken_by_another_item_is_refused_but_the_same_item_again_is_not():
    ops = Registry("op")
    ops.register("add", len)
    ops.register("add", len)  # a module imported twice registers the same function again
    with pytest.raises(DuplicateName, match="op 'add' is registered twice"):
        ops.register("add", max)
    with pytest.raises(DuplicateName, match="non-empty name"):
        ops.register("", min)


def test_an_unknown_name_names_close_matches_with_the_kinds_error():
    spaces = Registry("space", error=SpaceError)
    for name in ("autoformer-tiny", "autoformer-small", "pit"):
        spaces.register(name, name.upper())
    with pytest.raises(SpaceError, match=r"unknown space 'autoformer-tny'; did you mean `autoformer-tiny`") as caught:
        spaces.get("autoformer-tny")
    assert "known: autoformer-small, autoformer-tiny, pit" in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_modules_are_imported_on_the_first_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "registry_home.py").write_text(
        "from synth.registry import Registry\nTHINGS = Registry('thing', modules=('registers_on_import',))\n")
    (tmp_path / "registers_on_import.py").write_text("from registry_home import THINGS\nTHINGS.register('late', 42)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("registry_home", "registers_on_import"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    from registry_home import THINGS

    assert "registers_on_import" not in sys.modules
    assert THINGS.get("late") == 42 and "registers_on_import" in sys.modules


def test_a_registry_can_keep_its_items_in_a_table_others_read():
    table = {"add": len}
    ops = Registry("op", items=table)
    ops.register("mul", max)
    assert table == {"add": len, "mul": max} and ops.names() == ["add", "mul"]
    with pytest.raises(DuplicateName):
        ops.register("add", min)


def test_builders_and_zoo_proxies_refuse_a_taken_name_and_name_close_ones():
    from synth.builders import register_builder, registered_builders
    from synth.zoo import get_proxy, register_proxy

    assert {"vit", "pit", "nasbench201"} <= set(registered_builders())
    assert get_proxy("snip").paper  # synth's own proxies registered (on the first lookup)
    with pytest.raises(DuplicateName, match="builder 'vit' is registered twice"):
        register_builder("vit")(lambda arch: None)
    with pytest.raises(DuplicateName, match="proxy 'snip' is registered twice"):
        register_proxy("snip", paper="a second snip")(lambda model, inputs, targets, loss_fn: 0.0)
    with pytest.raises(InputError, match="unknown proxy 'snp'; did you mean `snip`") as caught:
        get_proxy("snp")
    assert isinstance(caught.value, KeyError)  # as get_proxy raised before the registry
    assert str(caught.value).startswith("unknown proxy")

