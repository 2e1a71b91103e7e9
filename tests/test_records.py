"""Records are validated at birth and round-trip through their JSON form."""

import math

import pytest

from gpubench.records import CaseResult, CaseSpec, RecordError, spec_hash


def spec(**kw):
    base = dict(workload="matmul", backend="numpy", device="cpu", dtype="float32", params={"m": 4, "n": 4, "k": 4})
    base.update(kw)
    return CaseSpec.make(**base)


def test_spec_is_frozen_and_canonical():
    a = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"n": 2, "m": 1, "k": 3})
    b = CaseSpec.make("matmul", "numpy", "cpu", "float32", {"k": 3, "m": 1, "n": 2})
    assert a == b and hash(a) == hash(b)
    assert a.param_dict == {"k": 3, "m": 1, "n": 2}
    assert CaseSpec.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("kw, message", [
    (dict(dtype="float8"), "unknown dtype"),
    (dict(backend=""), "backend must be"),
    (dict(params={"m": object()}), "unsupported type"),
])
def test_bad_spec_fails_at_birth(kw, message):
    with pytest.raises(RecordError, match=message):
        spec(**kw)


@pytest.mark.parametrize("kw, message", [
    (dict(status="great", samples=(1.0,)), "unknown status"),
    (dict(status="ok", samples=()), "needs samples"),
    (dict(status="ok", samples=(-1.0,)), "not a positive"),
    (dict(status="ok", samples=(math.nan,)), "not a positive"),
    (dict(status="ok", samples=(1.0,), number=0), "positive integer"),
    (dict(status="error"), "needs a reason"),
    (dict(status="incorrect", samples=(1.0,)), "must carry its error"),
    (dict(status="ok", samples=(1.0,), clock="sundial"), "unknown clock"),
    (dict(status="ok", samples=(1.0,), flops=-5.0), "non-negative"),
])
def test_bad_result_fails_at_birth(kw, message):
    with pytest.raises(RecordError, match=message):
        CaseResult(spec=spec(), **kw)


def test_result_round_trip_and_derived_rates():
    r = CaseResult(spec=spec(), status="ok", samples=(2e-3, 1e-3, 3e-3), number=4, flops=2e9, bytes=1e9,
                   rel_error=1e-7, tolerance=1e-5, target_met=True, spec_hash="abc")
    assert r.median_s == 2e-3
    assert r.gflops == pytest.approx(1000.0)
    assert r.gbps == pytest.approx(500.0)
    assert CaseResult.from_dict(r.to_dict()) == r


def test_incorrect_result_has_no_rate():
    r = CaseResult(spec=spec(), status="incorrect", samples=(1e-3,), flops=1e9, rel_error=0.5, error="wrong")
    assert r.gflops is None


def test_newer_record_version_is_refused():
    d = CaseResult(spec=spec(), status="skipped", error="no gpu").to_dict()
    d["record_version"] = 99
    with pytest.raises(RecordError, match="newer"):
        CaseResult.from_dict(d)


def test_spec_hash_covers_kernel_source():
    s = spec()
    assert spec_hash(s, {"k.cu": "a"}) != spec_hash(s, {"k.cu": "b"})
    assert spec_hash(s, {"k.cu": "a"}) == spec_hash(s, {"k.cu": "a"})
    assert spec_hash(s) != spec_hash(spec(dtype="float64"))


# --- version 3: machine state and energy ---------------------------------------------------------------


@pytest.mark.parametrize("energy, message", [
    ({"joules_per_call": 0.0, "source": "rapl"}, "positive finite"),
    ({"joules_per_call": -1.0, "source": "rapl"}, "positive finite"),
    ({"joules_per_call": math.inf, "source": "rapl"}, "positive finite"),
    ({"joules_per_call": 1.0}, "no source"),
    ({"joules": 5.0}, "or the reason"),
    ({"reason": ""}, "or the reason"),
    ({"reason": "x", "calls": 0}, "positive integer"),
    ({"joules_per_call": 1.0, "source": "nvml:0", "host": {"joules_per_call": 0}}, "energy.host"),
    ("12 J", "must be a dict"),
])
def test_energy_is_a_positive_figure_with_its_source_or_a_reason_never_zero(energy, message):
    with pytest.raises(RecordError, match=message):
        CaseResult(spec=spec(), status="ok", samples=(1e-3,), energy=energy)


def test_every_record_carries_energy_or_its_reason():
    r = CaseResult(spec=spec(), status="skipped", error="no gpu")
    assert r.energy == {"reason": "not measured: the case ended as skipped"}
    assert r.joules_per_call is None and r.energy_reason.startswith("not measured")
    r = CaseResult(spec=spec(), status="ok", samples=(1e-3,))
    assert r.energy["reason"] == "not measured: no measured window"


def test_machine_and_energy_round_trip_with_derived_efficiency():
    machine = {"cpu": {"other_cores": 0.1, "cores": 2, "load_before": [0.5, 0.4, 0.3]},
               "gpu": {"reason": "a CPU case"}, "window_s": 2.0, "calls": 4000}
    energy = {"joules_per_call": 0.01, "joules": 40.0, "calls": 4000, "window_s": 2.0, "watts": 20.0, "source": "rapl"}
    r = CaseResult(spec=spec(), status="ok", samples=(1e-3,), flops=2e9, bytes=1e8, machine=machine, energy=energy,
                   flags=("busy",))
    back = CaseResult.from_dict(r.to_dict())
    assert back == r and back.to_dict()["record_version"] == 3
    assert back.gflop_per_joule == pytest.approx(200.0) and back.gb_per_joule == pytest.approx(10.0)
    with pytest.raises(RecordError, match="other_cores"):
        CaseResult(spec=spec(), status="ok", samples=(1e-3,), machine={"cpu": {"other_cores": -1}})
    with pytest.raises(RecordError, match="unknown flag"):
        CaseResult(spec=spec(), status="ok", samples=(1e-3,), flags=("sleepy",))


def test_a_version_2_record_still_reads_with_the_reason_energy_was_not_recorded():
    d = CaseResult(spec=spec(), status="ok", samples=(1e-3,), flags=("noisy",)).to_dict()
    d["record_version"] = 2
    del d["machine"], d["energy"]
    r = CaseResult.from_dict(d)
    assert r.machine == {} and r.flags == ("noisy",)
    assert r.energy == {"reason": "not recorded: a version-2 record (before gpubench measured energy)"}
