"""From command-line arguments to a checked batch: paths, directories, globs, items and keys."""

import dataclasses
import os
from pathlib import Path

import pytest

from simmate_k8s import results
from simmate_k8s.errors import InputError
from simmate_k8s.flows import inputs
from simmate_k8s.flows.registry import get_workflow
from tests.conftest import EXAMPLES
from tests.support.poscars import cu_poscar, write_poscars

RELAX = get_workflow("relaxation_emt")
STATIC = get_workflow("static_energy_emt")
SMOKE = get_workflow("smoke")
GOOD = EXAMPLES / "Cu_fcc_rattled.POSCAR"


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """Run in tmp_path, so relative arguments (as a user types them) can be tested."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- paths, directories and globs --------------------------------------------------------------


def test_files_are_kept_as_given_and_in_order(tmp_path):
    a, b, c = write_poscars(tmp_path, 3)
    assert inputs.expand_paths([c, a, b]) == [str(c), str(a), str(b)]
    assert inputs.expand_paths([a, a]) == [str(a), str(a)]  # duplicates are the user's choice


def test_a_directory_gives_its_visible_files_sorted(tmp_path):
    folder = tmp_path / "structures"
    paths = write_poscars(folder, 3)
    (folder / ".hidden.POSCAR").write_text(cu_poscar(99))
    (folder / "nested").mkdir()
    (folder / "nested" / "deep.POSCAR").write_text(cu_poscar(98))
    assert inputs.expand_paths([folder]) == [str(p) for p in paths]


def test_directories_and_files_mix_in_argument_order(tmp_path):
    folder = tmp_path / "dir"
    in_dir = write_poscars(folder, 2)
    single = write_poscars(tmp_path, 1, start=50)[0]
    assert inputs.expand_paths([single, folder]) == [str(single), *map(str, in_dir)]


def test_an_empty_directory_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "only-hidden").mkdir()
    (tmp_path / "only-hidden" / ".x").write_text("x")
    for name in ("empty", "only-hidden"):
        with pytest.raises(InputError) as error:
            inputs.expand_paths([tmp_path / name])
        assert one_line(error) == f"{tmp_path / name}: the directory has no input files"


def test_a_quoted_glob_is_expanded_here(cwd):
    """The shell did not expand it (quoted, or no match there): expand_paths does, sorted."""
    paths = write_poscars(cwd / "batch", 3)
    (cwd / "batch" / "notes.txt").write_text("not a structure")
    (cwd / "batch" / "dir.POSCAR").mkdir()  # a directory matching the pattern is not an input
    assert inputs.expand_paths(["batch/*.POSCAR"]) == [f"batch/{p.name}" for p in paths]
    assert inputs.expand_paths([str(cwd / "batch" / "s0000[02].POSCAR")]) == [
        str(paths[0]), str(paths[2])]
    assert inputs.expand_paths(["batch/s0000?.POSCAR"]) == [f"batch/{p.name}" for p in paths]


def test_a_glob_that_matches_nothing_is_an_error(cwd):
    write_poscars(cwd, 2)
    with pytest.raises(InputError) as error:
        inputs.expand_paths(["*.vasp"])
    assert one_line(error) == "*.vasp: no files match this pattern"


def test_a_file_whose_name_looks_like_a_glob_is_that_file(cwd):
    odd = cwd / "Cu[1].POSCAR"
    odd.write_text(cu_poscar(1))
    (cwd / "Cu1.POSCAR").write_text(cu_poscar(2))  # what the pattern would match
    assert inputs.expand_paths(["Cu[1].POSCAR"]) == ["Cu[1].POSCAR"]


def test_a_missing_file_is_named_when_read(tmp_path):
    missing = tmp_path / "missing.POSCAR"
    assert inputs.expand_paths([missing]) == [str(missing)]  # reading it says what is wrong
    with pytest.raises(InputError) as error:
        inputs.from_arguments(RELAX, [GOOD, missing], [])
    assert one_line(error) == f"{missing}: no such file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_named(tmp_path):
    locked = tmp_path / "locked.POSCAR"
    locked.write_text(cu_poscar(0))
    locked.chmod(0)
    with pytest.raises(InputError) as error:
        inputs.from_arguments(RELAX, [locked], [])
    assert one_line(error).startswith(f"{locked}: permission denied")


def test_a_fifo_or_binary_file_is_named_as_what_it_is(tmp_path):
    fifo = tmp_path / "pipe.POSCAR"
    os.mkfifo(fifo)
    binary = tmp_path / "image.POSCAR"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    for path, expected in ((fifo, "not a regular file"), (binary, "not a text file")):
        with pytest.raises(InputError) as error:
            inputs.from_arguments(RELAX, [path], [])
        assert one_line(error).startswith(f"{path}: {expected}")


# --- the batch ---------------------------------------------------------------------------------


def test_from_arguments_reads_and_checks_every_input(cwd):
    paths = write_poscars(cwd / "in", 4)
    batch = inputs.from_arguments(RELAX, ["in"], ["fmax=0.1"])
    assert batch.parameters == {"fmax": 0.1, "max_steps": 500}
    assert [item["position"] for item in batch.items] == [0, 1, 2, 3]
    assert [item["name"] for item in batch.items] == [f"in/{p.name}" for p in paths]
    assert [item["data"] for item in batch.items] == [p.read_text() for p in paths]
    assert batch.inputs() == [{"name": f"in/{p.name}", "data": p.read_text()} for p in paths]
    assert batch.warnings == []


def test_one_bad_input_fails_the_whole_batch_naming_it(tmp_path):
    good = write_poscars(tmp_path, 3)
    bad = tmp_path / "broken.POSCAR"
    bad.write_text("not a POSCAR\n")
    with pytest.raises(InputError) as error:
        inputs.from_arguments(RELAX, [*good, bad], [])
    assert one_line(error).startswith(f"{bad}: ")


def test_unsupported_elements_are_an_input_error(tmp_path):
    iron = tmp_path / "Fe.POSCAR"
    iron.write_text(cu_poscar(0).replace("Cu", "Fe"))
    with pytest.raises(InputError) as error:
        inputs.from_arguments(RELAX, [iron], [])
    assert one_line(error).startswith(f"{iron}: ")
    assert "Fe" in str(error.value)


def test_parameters_are_checked_before_any_file_is_read(tmp_path):
    with pytest.raises(InputError, match="fmax"):
        inputs.from_arguments(RELAX, [tmp_path / "missing.POSCAR"], ["fmax=-1"])


def test_a_directory_given_as_a_file_path_is_not_a_missing_file(tmp_path):
    from simmate_k8s.flows.structures import StructureError, read_input_file

    with pytest.raises(StructureError, match="is a directory"):
        read_input_file(tmp_path)


def test_file_workflows_need_an_input():
    with pytest.raises(InputError) as error:
        inputs.from_arguments(RELAX, [], [])
    assert one_line(error).startswith("relaxation_emt needs at least one input")


def test_smoke_takes_no_inputs():
    with pytest.raises(InputError) as error:
        inputs.from_arguments(SMOKE, ["x"], [])
    assert one_line(error) == "smoke takes no input files (got 1)"
    batch = inputs.from_arguments(SMOKE, [], ["n=3"])
    assert batch.parameters == {"n": 3, "delay": 0.0, "fail_every": 0}
    assert [(i["position"], i["name"], i["data"]) for i in batch.items] == [
        (0, "square-0", 0), (1, "square-1", 1), (2, "square-2", 2)]
    assert len({item["key"] for item in batch.items}) == 3


def test_a_large_structure_gets_a_warning_with_its_size(tmp_path):
    side = 13  # 2,197 atoms on a 2.5 Å grid: above LARGE_STRUCTURE_ATOMS
    length = side * 2.5
    lines = ["large", "1.0", f"{length} 0 0", f"0 {length} 0", f"0 0 {length}", "Cu",
             str(side ** 3), "Cartesian"]
    lines += [f"{x * 2.5} {y * 2.5} {z * 2.5}"
              for x in range(side) for y in range(side) for z in range(side)]
    big = tmp_path / "big.POSCAR"
    big.write_text("\n".join(lines) + "\n")
    batch = inputs.from_arguments(STATIC, [big, GOOD], [])
    assert len(batch.items) == 2
    (warning,) = batch.warnings
    assert warning.startswith(f"{big}: 2,197 atoms (Cu2197)")


def test_split_keeps_the_order_and_renumbers(tmp_path):
    batch = inputs.from_arguments(STATIC, write_poscars(tmp_path, 10), [])
    assert batch.split(None) == [batch] and batch.split(10) == [batch]
    assert batch.split(11) == [batch]
    parts = batch.split(4)
    assert [len(part.items) for part in parts] == [4, 4, 2]
    assert [item["name"] for part in parts for item in part.items] == [
        item["name"] for item in batch.items]
    assert [[item["position"] for item in part.items] for part in parts] == [
        [0, 1, 2, 3], [0, 1, 2, 3], [0, 1]]
    assert [item["key"] for part in parts for item in part.items] == [
        item["key"] for item in batch.items]
    assert all(part.parameters == batch.parameters for part in parts)
    assert [item["position"] for item in batch.items] == list(range(10))  # not changed


def test_rename_takes_the_submitters_names_and_keeps_the_keys(tmp_path):
    batch = inputs.from_arguments(STATIC, write_poscars(tmp_path, 2), [])
    keys = [item["key"] for item in batch.items]
    batch.rename(["first.POSCAR", "second.POSCAR"])
    assert [item["name"] for item in batch.items] == ["first.POSCAR", "second.POSCAR"]
    assert batch.inputs()[0]["name"] == "first.POSCAR"
    assert [item["key"] for item in batch.items] == keys
    with pytest.raises(ValueError):
        batch.rename(["only-one"])


# --- runs started elsewhere (the Prefect UI) -----------------------------------------------------


def test_from_flow_parameters_checks_the_same_things(tmp_path):
    data = cu_poscar(3)
    batch = inputs.from_flow_parameters(RELAX, [{"name": "a", "data": data}], {"fmax": 0.1})
    assert batch.parameters == {"fmax": 0.1, "max_steps": 500}
    cli = inputs.from_arguments(RELAX, write_poscars(tmp_path, 4)[3:], ["fmax=0.1"])
    assert batch.items[0]["key"] == cli.items[0]["key"]  # the same work, found again
    cases = [
        (None, {}, "needs at least one input"),
        ([], {}, "needs at least one input"),
        (["POSCAR text"], {}, "expected a list of"),
        ([{"name": "a"}], {}, "expected a list of"),
        ([{"name": "a", "data": 3}], {}, "a: expected POSCAR text"),
        ([{"name": "a", "data": "not a POSCAR"}], {}, "a: "),
        ([{"name": "a", "data": data}], {"fmax": float("nan")}, "fmax"),
        ([{"name": "a", "data": data}], {"max_steps": 0}, "max_steps"),
        ([{"name": "a", "data": data}], {"steps": 3}, "no such parameter"),
    ]
    for given, parameters, expected in cases:
        with pytest.raises(InputError, match=expected):
            inputs.from_flow_parameters(RELAX, given, parameters)


def test_from_flow_parameters_of_smoke_generates_the_items():
    batch = inputs.from_flow_parameters(SMOKE, None, {"n": 2})
    assert [item["data"] for item in batch.items] == [0, 1]
    with pytest.raises(InputError, match="n=0"):
        inputs.from_flow_parameters(SMOKE, None, {"n": 0})


# --- the identity of an item: workflow, version, content, parameters ---------------------------


def keys(workflow, paths, *assignments):
    return [item["key"] for item in inputs.from_arguments(workflow, paths, assignments).items]


def test_same_content_and_parameters_give_the_same_key(tmp_path):
    first, second = tmp_path / "a.POSCAR", tmp_path / "renamed.POSCAR"
    first.write_text(cu_poscar(5))
    second.write_text(cu_poscar(5))
    assert keys(RELAX, [first]) == keys(RELAX, [second]) == keys(RELAX, [first], "fmax=0.05")
    assert keys(RELAX, [first]) == keys(RELAX, [first], "max_steps=500", "fmax=5e-2")
    assert len(keys(RELAX, [first])[0]) == 64


def test_different_parameters_give_different_keys():
    assert len({*keys(RELAX, [GOOD]), *keys(RELAX, [GOOD], "fmax=0.01"),
                *keys(RELAX, [GOOD], "max_steps=499"),
                *keys(RELAX, [GOOD], "fmax=0.01", "max_steps=499")}) == 4


def test_different_content_workflow_or_version_give_different_keys(tmp_path):
    a, b = write_poscars(tmp_path, 2)
    assert keys(RELAX, [a]) != keys(RELAX, [b])
    assert keys(STATIC, [a]) != keys(RELAX, [a])
    newer = dataclasses.replace(RELAX, version=RELAX.version + ".1")
    assert keys(newer, [a]) != keys(RELAX, [a])
    batch = inputs.from_arguments(RELAX, [a], [])
    item = batch.items[0]
    assert item["key"] == results.item_key(RELAX.name, RELAX.version, item["digest"],
                                           RELAX.compute_parameters(batch.parameters))


def test_the_digest_ignores_trailing_whitespace_and_blank_lines(tmp_path):
    text = cu_poscar(9)
    variants = [text, text.rstrip("\n"), text + "\n\n\n",
                text.replace("\n", "   \n"), text.replace("\n", "\t\n"),
                text.replace("\n", "\r\n")]
    paths = []
    for index, variant in enumerate(variants):
        path = tmp_path / f"v{index}.POSCAR"
        path.write_bytes(variant.encode())
        paths.append(path)
    assert len({results.input_digest(variant) for variant in variants[:-1]}) == 1
    assert len(set(keys(STATIC, paths))) == 1  # CRLF too: files are read as text


def test_the_digest_sees_every_real_change():
    text = cu_poscar(9)
    changed = [text.replace("Cu", "Au"), text.replace("3.6", "3.7", 1),
               text.replace("Direct", "Cartesian"), text.replace("1.0\n", "1.01\n", 1)]
    digests = {results.input_digest(v) for v in [text, *changed]}
    assert len(digests) == len(changed) + 1


def test_the_digest_of_json_data_ignores_key_order():
    assert results.input_digest({"a": 1, "b": [1, 2]}) == results.input_digest(
        {"b": [1, 2], "a": 1})
    assert results.input_digest({"a": 1}) != results.input_digest({"a": 2})


def test_item_key_depends_on_each_part():
    base = ("relaxation_emt", "1", "d" * 64, {"fmax": 0.05})
    key = results.item_key(*base)
    assert key == results.item_key("relaxation_emt", "1", "d" * 64, {"fmax": 0.05})
    assert len({key,
                results.item_key("static_energy_emt", "1", "d" * 64, {"fmax": 0.05}),
                results.item_key("relaxation_emt", "2", "d" * 64, {"fmax": 0.05}),
                results.item_key("relaxation_emt", "1", "e" * 64, {"fmax": 0.05}),
                results.item_key("relaxation_emt", "1", "d" * 64, {"fmax": 0.01}),
                results.item_key("relaxation_emt", "1", "d" * 64, {})}) == 6
    assert results.item_key("w", "1", "d", {"a": 1, "b": 2}) == results.item_key(
        "w", "1", "d", {"b": 2, "a": 1})


def test_smoke_items_are_the_same_work_whatever_n_is():
    three = keys(SMOKE, [], "n=3")
    assert keys(SMOKE, [], "n=10")[:3] == three
    assert keys(SMOKE, [], "n=3", "delay=0.5") != three
    assert keys(SMOKE, [], "n=3", "fail_every=2") != three


def test_relative_and_absolute_names_are_kept_as_typed(cwd):
    write_poscars(cwd, 1)
    batch = inputs.from_arguments(STATIC, ["s00000.POSCAR", str(Path.cwd() / "s00000.POSCAR")],
                                  [])
    assert [item["name"] for item in batch.items] == ["s00000.POSCAR",
                                                      str(cwd / "s00000.POSCAR")]
    assert batch.items[0]["key"] == batch.items[1]["key"]
