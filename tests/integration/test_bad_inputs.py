"""Bad input: one clear line, exit code 2, no traceback, nothing written (real PostgreSQL)."""

import pytest

from tests.conftest import EXAMPLES, count_rows, run_cli

GOOD = EXAMPLES / "Cu_fcc_rattled.POSCAR"
CELL = "1.0\n3 0 0\n0 3 0\n0 0 3\n"


def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


# (id, arguments, files to create, expected message); {tmp} is replaced by the test's folder
CASES = [
    ("01_unknown_flow", ["run", "relax", GOOD], {}, "unknown workflow 'relax'"),
    ("02_missing_file", ["run", "relaxation_emt", "{tmp}/nope.POSCAR"], {}, "no such file"),
    ("03_directory", ["run", "relaxation_emt", "{tmp}"], {}, "no such file"),
    ("04_empty_file", ["run", "relaxation_emt", "{tmp}/empty"], {"empty": ""}, "empty structure"),
    ("05_garbage", ["run", "relaxation_emt", "{tmp}/g"], {"g": "hello\nworld\n"},
     "cannot parse POSCAR"),
    ("06_zero_atoms", ["run", "relaxation_emt", "{tmp}/z"],
     {"z": "t\n" + CELL + "Cu\n0\nDirect\n"}, "zero atoms"),
    ("07_unsupported_element", ["run", "relaxation_emt", "{tmp}/fe"],
     {"fe": "t\n" + CELL + "Fe\n1\nDirect\n0 0 0\n"}, "Fe are not supported"),
    ("08_binary_file", ["run", "relaxation_emt", "{tmp}/b"], {"b": b"\xff\xfe\x00\x81"},
     "not a text file"),
    ("09_one_bad_in_a_batch", ["run", "relaxation_emt", GOOD, "{tmp}/g"], {"g": "x"},
     "cannot parse POSCAR"),
    ("10_param_without_value", ["run", "relaxation_emt", GOOD, "--param", "fmax"], {},
     "expected KEY=VALUE"),
    ("11_unknown_param", ["run", "relaxation_emt", GOOD, "--param", "steps=3"], {},
     "has no such parameter"),
    ("12_param_wrong_type", ["run", "relaxation_emt", GOOD, "--param", "max_steps=many"], {},
     "expected a int"),
    ("13_input_for_smoke", ["run", "smoke", GOOD], {}, "takes no input files"),
    ("14_no_input", ["run", "relaxation_emt"], {}, "needs at least one input"),
    ("15_bad_address", ["run", "smoke", "--address", "127.0.0.1:1"], {}, "expected tcp://HOST:PORT"),
    ("16_no_scheduler", ["run", "smoke", "--address", "tcp://127.0.0.1:9"], {},
     "no Dask scheduler answers"),
    ("17_degenerate_cell", ["run", "static_energy_emt", "{tmp}/d"],
     {"d": "t\n1.0\n1 0 0\n2 0 0\n0 0 1\nCu\n1\nDirect\n0 0 0\n"}, "degenerate"),
]


@pytest.mark.parametrize("case_id, args, files, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id, args, files, expected, tmp_path, pg_url, cli_env):
    for name, content in files.items():
        _write(tmp_path, name, content)
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    result = run_cli(*[str(a).replace("{tmp}", str(tmp_path)) for a in args], env=cli_env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert count_rows(pg_url) == 0


@pytest.mark.parametrize("url, expected", [
    ("mysql://simmate:hunter2@db/results", "only postgresql and sqlite"),
    ("postgresql://simmate:hunter2@127.0.0.1:9/results", "cannot reach the results database"),
    ("::nonsense::", "is not a database URL"),
], ids=["18_unsupported_database", "19_unreachable_database", "20_unparsable_url"])
def test_bad_database_url(url, expected, cli_env):
    cli_env["SIMMATE_DATABASE_URL"] = url
    cli_env["SIMMATE_DB_CONNECT_TIMEOUT"] = "1"
    for args in (["run", "relaxation_emt", GOOD], ["results"], ["db", "check"]):
        result = run_cli(*args, env=cli_env)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr and "hunter2" not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


def test_bad_input_count():
    assert len(CASES) + 3 >= 10
