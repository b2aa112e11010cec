"""Bad input: one clear line, exit code 2, no traceback, nothing written (real PostgreSQL).

Every case is checked on the client before anything starts: no Dask cluster, no flow run, no
row, and the database is not even given a table.
"""

import os

import pytest

from tests.conftest import EXAMPLES, count_rows, run_cli

GOOD = EXAMPLES / "Cu_fcc_rattled.POSCAR"
CELL = "t\n1.0\n3 0 0\n0 3 0\n0 0 3\n"


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is None:
        path.mkdir()
    else:
        path.write_text(content)
    return path


# (id, arguments, files to create, expected message); {tmp} is replaced by the test's folder.
# A file whose content is None is created as an empty directory.
CASES = [
    ("unknown_flow", ["run", "relax", GOOD], {}, "unknown workflow 'relax'"),
    ("missing_file", ["run", "relaxation_emt", "{tmp}/nope.POSCAR"], {}, "no such file"),
    ("empty_directory", ["run", "relaxation_emt", "{tmp}/d"], {"d": None},
     "the directory has no input files"),
    ("glob_matching_nothing", ["run", "relaxation_emt", "{tmp}/*.vasp"], {},
     "no files match this pattern"),
    ("bad_file_in_a_directory", ["run", "relaxation_emt", "{tmp}"], {"a": CELL + "Cu\n1\nD\n"},
     "/a: "),
    ("empty_file", ["run", "relaxation_emt", "{tmp}/empty"], {"empty": ""}, "empty"),
    ("garbage", ["run", "relaxation_emt", "{tmp}/g"], {"g": "hello\nworld\n"}, "g: "),
    ("binary_file", ["run", "relaxation_emt", "{tmp}/b"], {"b": b"\xff\xfe\x00\x81"},
     "not a text file"),
    ("zero_atoms", ["run", "relaxation_emt", "{tmp}/z"], {"z": CELL + "Cu\n0\nDirect\n"},
     "zero atoms"),
    ("unsupported_element", ["run", "relaxation_emt", "{tmp}/fe"],
     {"fe": CELL + "Fe\n1\nDirect\n0 0 0\n"}, "Fe are not supported"),
    ("not_an_element", ["run", "relaxation_emt", "{tmp}/xx"],
     {"xx": CELL + "Qq\n1\nDirect\n0 0 0\n"}, "Qq"),
    ("nan_coordinate", ["run", "relaxation_emt", "{tmp}/n"],
     {"n": CELL + "Cu\n2\nDirect\n0 0 0\nnan 0.5 0.5\n"}, "not finite"),
    ("inf_coordinate", ["run", "relaxation_emt", "{tmp}/i"],
     {"i": CELL + "Cu\n1\nDirect\ninf 0 0\n"}, "not finite"),
    ("two_atoms_on_one_site", ["run", "relaxation_emt", "{tmp}/s"],
     {"s": CELL + "Cu\n2\nDirect\n0 0 0\n0 0 0\n"}, "are 0.00 Å apart"),
    ("atoms_too_close_through_the_boundary", ["run", "relaxation_emt", "{tmp}/pb"],
     {"pb": CELL + "Cu\n2\nDirect\n0.01 0 0\n0.99 0 0\n"}, "closer than 0.5 Å"),
    ("cell_smaller_than_an_atom", ["run", "relaxation_emt", "{tmp}/c"],
     {"c": "t\n1.0\n0.3 0 0\n0 3 0\n0 0 3\nCu\n1\nDirect\n0 0 0\n"}, "own periodic image"),
    ("species_without_counts", ["run", "relaxation_emt", "{tmp}/sc"],
     {"sc": CELL + "Cu Au\n1\nDirect\n0 0 0\n"}, "2 species (Cu Au) but 1 count"),
    ("header_claims_1e8_atoms", ["run", "relaxation_emt", "{tmp}/h"],
     {"h": "t\n1\n3 0 0\n0 3 0\n0 0 3\nCu\n100000000\nD\n0 0 0\n"},
     "declares 100000000 atoms but has 1 coordinate line"),
    ("scale_factor_zero", ["run", "relaxation_emt", "{tmp}/s0"],
     {"s0": "t\n0\n3 0 0\n0 3 0\n0 0 3\nCu\n1\nD\n0 0 0\n"}, "scale factor is 0"),
    ("scale_factor_nan", ["run", "relaxation_emt", "{tmp}/sn"],
     {"sn": "t\nnan\n3 0 0\n0 3 0\n0 0 3\nCu\n1\nD\n0 0 0\n"}, "not finite"),
    ("vasp4_without_symbols", ["run", "relaxation_emt", "{tmp}/v4"],
     {"v4": CELL + "1\nDirect\n0 0 0\n"}, "add the element symbols line"),
    ("negative_count", ["run", "relaxation_emt", "{tmp}/nc"],
     {"nc": CELL + "Cu\n-1\nDirect\n0 0 0\n"}, "is negative"),
    ("text_coordinate", ["run", "relaxation_emt", "{tmp}/tc"],
     {"tc": CELL + "Cu\n1\nDirect\n0 a 0\n"}, "is not a number"),
    ("two_coordinates", ["run", "relaxation_emt", "{tmp}/2c"],
     {"2c": CELL + "Cu\n1\nDirect\n0 0\n"}, "needs 3 coordinates"),
    ("degenerate_cell", ["run", "static_energy_emt", "{tmp}/d"],
     {"d": "t\n1.0\n1 0 0\n2 0 0\n0 0 1\nCu\n1\nDirect\n0 0 0\n"}, "degenerate"),
    ("one_bad_in_a_batch", ["run", "relaxation_emt", GOOD, "{tmp}/g"], {"g": "x"}, "g: "),
    ("param_without_value", ["run", "relaxation_emt", GOOD, "--param", "fmax"], {},
     "expected KEY=VALUE"),
    ("unknown_param", ["run", "relaxation_emt", GOOD, "--param", "steps=3"], {},
     "has no such parameter"),
    ("param_wrong_type", ["run", "relaxation_emt", GOOD, "--param", "max_steps=many"], {},
     "expected a whole number"),
    ("fmax_negative", ["run", "relaxation_emt", GOOD, "-p", "fmax=-1"], {}, "fmax=-1"),
    ("fmax_zero", ["run", "relaxation_emt", GOOD, "-p", "fmax=0"], {}, "> 0"),
    ("fmax_nan", ["run", "relaxation_emt", GOOD, "-p", "fmax=nan"], {}, "finite number"),
    ("fmax_inf", ["run", "relaxation_emt", GOOD, "-p", "fmax=inf"], {}, "finite number"),
    ("max_steps_zero", ["run", "relaxation_emt", GOOD, "-p", "max_steps=0"], {}, ">= 1"),
    ("max_steps_fraction", ["run", "relaxation_emt", GOOD, "-p", "max_steps=2.5"], {},
     "whole number"),
    ("delay_negative", ["run", "smoke", "-p", "delay=-1"], {}, "delay=-1"),
    ("delay_nan", ["run", "smoke", "-p", "delay=nan"], {}, "finite number"),
    ("n_too_large", ["run", "smoke", "-p", "n=1000000"], {}, "<= 100000"),
    ("n_zero", ["run", "smoke", "-p", "n=0"], {}, ">= 1"),
    ("input_for_smoke", ["run", "smoke", GOOD], {}, "takes no input files"),
    ("no_input", ["run", "relaxation_emt"], {}, "needs at least one input"),
    ("bad_address", ["run", "smoke", "--address", "127.0.0.1:1"], {}, "expected tcp://HOST:PORT"),
    ("no_scheduler", ["run", "smoke", "--address", "tcp://127.0.0.1:9"], {},
     "no Dask scheduler answers"),
    ("bad_batch_id", ["run", "smoke", "--batch-id", "a b"], {}, "--batch-id"),
    ("submit_checks_the_same", ["submit", "relaxation_emt", "{tmp}/s"],
     {"s": CELL + "Cu\n2\nDirect\n0 0 0\n0 0 0\n"}, "are 0.00 Å apart"),
]


# These run as real processes (exit code and stderr as a shell sees them); the others run the
# same click command in-process, which is the same code path without ~1 s of imports each.
REAL_PROCESS = {"unknown_flow", "header_claims_1e8_atoms", "fmax_nan", "no_scheduler",
                "submit_checks_the_same", "bad_file_in_a_directory"}


def _in_process(args, env):
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    result = CliRunner().invoke(cli, args, env=env, prog_name="simmate-k8s")
    # anything but click's own exit would be a traceback in a real process
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("case_id, args, files, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, args, files, expected, tmp_path, pg_url, cli_env):
    for name, content in files.items():
        _write(tmp_path, name, content)
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    if case_id in REAL_PROCESS:
        result = run_cli(*args, env=cli_env)
        code, out, err = result.returncode, result.stdout, result.stderr
    else:
        code, out, err = _in_process(args, cli_env)
    assert code == 2, err
    assert expected in err
    assert "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1, err
    assert count_rows(pg_url) == 0


def test_an_unreadable_file_is_named_as_such(tmp_path, cli_env):
    if os.geteuid() == 0:  # root reads everything: make the read fail as it would for a user
        path = tmp_path / "fifo"
        os.mkfifo(path)  # not a regular file: named, not read (a read would block)
    else:
        path = _write(tmp_path, "locked", "x")
        path.chmod(0)
    result = run_cli("run", "relaxation_emt", path, env=cli_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("url, expected", [
    ("mysql://simmate:hunter2@db/results", "only postgresql and sqlite"),
    ("postgresql://simmate:hunter2@127.0.0.1:9/results", "cannot reach the results database"),
    ("postgresql://simmate@127.0.0.1:9/results?password=hunter2",
     "cannot reach the results database"),
    ("::nonsense::", "is not a database URL"),
    ("sqlite:///{tmp}/file/results.sqlite3", "is a file, not a directory"),
    ("sqlite:///{tmp}", "is a directory"),
], ids=["unsupported_database", "unreachable_database", "password_in_the_query",
        "unparsable_url", "sqlite_under_a_file", "sqlite_directory"])
def test_bad_database_url(url, expected, cli_env, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    cli_env["SIMMATE_DATABASE_URL"] = url.replace("{tmp}", str(tmp_path))
    cli_env["SIMMATE_DB_CONNECT_TIMEOUT"] = "1"
    real = "password" in url  # one URL as a shell sees it; the rest in-process
    for args in (["run", "relaxation_emt", str(GOOD)], ["results"], ["db", "check"],
                 ["db", "upgrade"]):
        if real:
            result = run_cli(*args, env=cli_env)
            code, out, err = result.returncode, result.stdout, result.stderr
        else:
            code, out, err = _in_process(args, cli_env)
        assert code == 2, (args, err)
        assert expected in err, (args, err)
        assert "hunter2" not in err + out
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name, value", [
    ("SIMMATE_DB_CONNECT_TIMEOUT", "nan"), ("SIMMATE_DB_CONNECT_TIMEOUT", "inf"),
    ("SIMMATE_DB_CONNECT_TIMEOUT", "-1"), ("SIMMATE_DB_SAVE_RETRY", "0"),
    ("SIMMATE_DB_SAVE_RETRY", "soon"),
])
def test_bad_timeouts_are_refused(name, value, cli_env):
    cli_env[name] = value
    code, _, err = _in_process(["run", "smoke"], cli_env)
    assert code == 2 and f"{name}={value!r}" in err and len(err.strip().splitlines()) == 1


def test_every_listed_case_is_here():
    assert len(CASES) >= 40
