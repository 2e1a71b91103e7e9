"""Suite files and filters: every bad input is a one-line UsageError before anything runs."""

import pytest

from gpubench.errors import UsageError
from gpubench.spec import Filters, builtin_suites, expand, load_suite


def write(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_builtin_suites_resolve_by_name():
    assert {"matmul", "saxpy"} <= set(builtin_suites())
    suite = load_suite("matmul")
    assert suite.name == "matmul" and suite.baseline == "numpy"


def test_expand_matmul_filters():
    specs = expand(load_suite("matmul"), Filters(backends=("numpy",), dtypes=("float32",)), quick=True)
    assert specs and all(s.backend == "numpy" and s.dtype == "float32" for s in specs)
    assert {s.param_dict["m"] for s in specs} >= {128, 512}
    assert len(specs) == len(set(specs))


def test_device_filter_with_explicit_id():
    specs = expand(load_suite("matmul"), Filters(backends=("torch",), devices=("cuda:1",)), quick=True)
    assert specs and {s.device for s in specs} == {"cuda:1"}


def test_square_and_rectangular_params(tmp_path):
    path = write(tmp_path, """
[[cases]]
workload = "matmul"
backends = ["numpy"]
params = { m = [3], n = [5], k = [7] }
""")
    (spec,) = expand(load_suite(path))
    assert spec.param_dict == {"m": 3, "n": 5, "k": 7}
    assert spec.suite == "s"


@pytest.mark.parametrize("text, message", [
    ("[[cases]\nworkload=", "malformed TOML"),
    ("name = 'x'", "at least one"),
    ("bogus = 1\n[[cases]]\nworkload='matmul'", "unknown key"),
    ("[[cases]]\nworkload='matmul'\nsizes=[1]", "unknown key"),
    ("[[cases]]\nworkload='fft'\nparams={n=[4]}", "unknown workload 'fft'"),
    ("[[cases]]\nworkload='matmul'\nbackends=['nosuch']\nparams={size=[4]}", "unknown backend 'nosuch'"),
    ("[[cases]]\nworkload='matmul'\nbackends=['numpy']\ndevices=['tpu']\nparams={size=[4]}", "no device kind 'tpu'"),
    ("[[cases]]\nworkload='matmul'\ndtypes=['float8']\nparams={size=[4]}", "unknown dtype 'float8'"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[0]}", "size|m must be >= 1"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[-4]}", "must be >= 1"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[2.5]}", "must be an integer"),
    ("[[cases]]\nworkload='matmul'\nparams={size=['big']}", "must be an integer"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[true]}", "must be an integer"),
    ("[[cases]]\nworkload='matmul'\nparams={m=[4]}", "missing parameter"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[4], colour=['red']}", "unknown parameter 'colour'"),
    ("[[cases]]\nworkload='matmul'\nparams={size=[]}", "must not be empty"),
    ("[[cases]]\nworkload='matmul'\nbackends=['numpy']\nvariants=['turbo']\nparams={size=[4]}", "no variant 'turbo'"),
    ("baseline='nosuch'\n[[cases]]\nworkload='matmul'\nparams={size=[4]}", "baseline backend"),
    ("[[cases]]\nworkload='matmul'\nbackends=['numpy']\nparams={size=[2000000]}", "GiB of memory"),
    ("[[cases]]\nworkload='saxpy'\nbackends=['numpy']\nparams={n=[4], a=['x']}", "must be a number"),
])
def test_bad_suite_files(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        expand(load_suite(write(tmp_path, text)))


def test_unknown_suite_name():
    with pytest.raises(UsageError, match="unknown suite 'nope'"):
        load_suite("nope")
    with pytest.raises(UsageError, match="not found"):
        load_suite("missing/dir/suite.toml")


@pytest.mark.parametrize("filters, message", [
    (Filters(backends=("nosuch",)), "unknown backend"),
    (Filters(devices=("tpu",)), "unknown device"),
    (Filters(dtypes=("int4",)), "unknown dtype"),
])
def test_bad_filters(filters, message):
    with pytest.raises(UsageError, match=message):
        expand(load_suite("matmul"), filters)


def test_filters_that_leave_nothing():
    with pytest.raises(UsageError, match="no cases left"):
        expand(load_suite("saxpy"), Filters(dtypes=("float64",)))
