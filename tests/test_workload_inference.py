"""The inference workload: its models, weights cache, inputs, check, per-call latency and real runs at tiny sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import TINY

from gpubench.errors import UsageError
from gpubench.harness import HarnessSettings
from gpubench.latency import (
    BUDGET_FACTOR,
    COLUMNS,
    PER_CALL,
    TAIL_CALLS,
    TARGET_CALLS,
    latency_columns,
    measure_latency,
    percentile,
)
from gpubench.workloads import get_workload
from gpubench.workloads.inference import REFERENCE_FLOPS, case_weights, check_rows
from gpubench.workloads.models import MODELS, gpt_shapes, parameter_count, resnet18_flops, resnet18_shapes, shapes
from gpubench.workloads.models import weights as weights_module
from gpubench.workloads.models.forward import conv_nhwc, forward, max_pool_nhwc


@pytest.fixture
def wl():
    return get_workload("inference")


# --- the models ------------------------------------------------------------------------------------------
def test_resnet18_is_torchvisions_size_and_cost():
    # torchvision documents ResNet-18 as 11,689,512 parameters and 1.81 GFLOPS (multiply-adds) at 224×224;
    # the shapes here add BatchNorm's running mean and variance (9,600 values).
    params = sum(int(np.prod(s)) for k, s in resnet18_shapes().items() if "running" not in k)
    assert params == 11_689_512
    assert resnet18_flops() / 2 == pytest.approx(1.814e9, rel=2e-3)
    assert parameter_count("resnet18") == params + 9_600


def test_gpt_shape_and_flops():
    s = gpt_shapes()
    assert s["wte"] == (8192, 512) and s["blocks.5.mlp.fc.weight"] == (2048, 512) and "blocks.6.ln1.weight" not in s
    # 6 layers × 128 tokens × (12·512² dense + 2·128·512 attention) multiply-adds, plus the last logits.
    assert MODELS["gpt"].forward_flops == 2 * (6 * 128 * (12 * 512 * 512 + 2 * 128 * 512) + 512 * 8192)


def test_numpy_conv_and_pool_match_a_direct_loop():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 7, 6, 3))
    w = rng.standard_normal((4, 3, 3, 3))
    out = conv_nhwc(x, w, stride=2, pad=1, block_bytes=64)  # tiny blocks: the batch is split
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 4, 3, 4))
    for p in range(4):
        for q in range(3):
            patch = xp[:, 2 * p:2 * p + 3, 2 * q:2 * q + 3, :]            # N, R, S, C
            ref[:, :, q, p] = np.einsum("nrsc,kcrs->nk", patch, w)
    np.testing.assert_allclose(out, ref.transpose(0, 3, 2, 1), rtol=1e-12)
    pooled = max_pool_nhwc(x, 3, 2, 1)
    assert pooled.shape == (2, 4, 3, 3)
    assert pooled[0, 0, 0, 0] == x[0, :2, :2, 0].max()


# --- weights ----------------------------------------------------------------------------------------------
def test_weights_are_drawn_from_the_seed_and_cached_once(weight_cache):
    w = weights_module.load_weights("cnn", 3)
    path = weights_module.weights_path("cnn", 3)
    assert path.parent == weight_cache / "weights" and path.exists()
    assert {k: v.shape for k, v in w.items()} == shapes("cnn")
    assert all(np.any(v != 0) for v in w.values())  # biases too: a dropped bias fails the check
    stamp = path.stat().st_mtime_ns
    weights_module._MEMORY.clear()
    again = weights_module.load_weights("cnn", 3)
    assert path.stat().st_mtime_ns == stamp  # read back, not made again
    assert all(np.array_equal(w[k], again[k]) for k in w)
    assert not np.array_equal(weights_module.make_weights("cnn", 4)["c1"], w["c1"])
    assert list((weight_cache / "weights").iterdir()) == [path]  # no temporary file left behind


def test_a_damaged_weight_file_is_made_again(weight_cache):
    path = weights_module.weights_path("mlp", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    w = weights_module.load_weights("mlp", 0)
    np.testing.assert_array_equal(w["w1"], weights_module.make_weights("mlp", 0)["w1"])
    assert path.stat().st_size > 1000


def test_resnet18_batchnorm_is_in_a_trained_eval_state():
    w = weights_module.make_weights("resnet18", 0)
    assert 0.5 <= w["bn1.running_var"].min() and w["bn1.running_var"].max() < 1.5
    assert np.abs(w["layer2.0.downsample.1.running_mean"]).max() <= 0.1


# --- the workload -----------------------------------------------------------------------------------------
def test_params_are_checked(wl):
    assert wl.normalize_params({"model": "gpt"}) == {"model": "gpt", "batch": 1, "seed": 0}
    with pytest.raises(UsageError, match="model must be one of"):
        wl.normalize_params({"model": "vgg"})
    with pytest.raises(UsageError, match="batch must be >= 1"):
        wl.normalize_params({"batch": 0})
    with pytest.raises(UsageError, match="at most 65536"):
        wl.normalize_params({"batch": 100_000})
    assert wl.per_call_latency and wl.report_section == "inference"


def test_every_backend_answers_the_same_requests(wl, weight_cache):
    params = wl.normalize_params({"model": "mlp", "batch": 5})
    a = wl.make_inputs(params, "float32", np.random.default_rng(1))
    b = wl.make_inputs(params, "float32", np.random.default_rng(2))
    np.testing.assert_array_equal(a["x"], b["x"])  # the case's own seed is not used
    tokens = wl.make_inputs(wl.normalize_params({"model": "gpt", "batch": 2}), "bfloat16", None)["x"]
    assert tokens.dtype == np.int64 and tokens.shape == (2, 128) and 0 <= tokens.min() and tokens.max() < 8192


@pytest.mark.parametrize("dtype, grid", [("bfloat16", 2 ** 16), ("float16", None)])
def test_weights_and_images_are_rounded_to_the_dtype(wl, weight_cache, dtype, grid):
    params = wl.normalize_params({"model": "cnn", "batch": 2})
    w = case_weights(wl.make_inputs(params, dtype, None))["c2"]
    assert w.dtype == np.float32
    if grid:
        assert np.all(w.view(np.uint32) % grid == 0)  # the low 16 bits of every bfloat16 value are zero
    else:
        np.testing.assert_array_equal(w, w.astype(np.float16).astype(np.float32))


def test_rows_checked_are_bounded_and_spread(wl):
    assert list(check_rows({"model": "mlp", "batch": 256})) == list(range(256))
    rows = check_rows({"model": "resnet18", "batch": 256})
    assert rows[0] == 0 and rows[-1] == 255 and len(rows) == int(REFERENCE_FLOPS // MODELS["resnet18"].forward_flops)
    assert len(check_rows({"model": "gpt", "batch": 256})) >= 2


def test_check_reads_the_checked_rows_and_refuses_a_wrong_shape(wl):
    params = {"model": "resnet18", "batch": 64, "seed": 0}
    rows = check_rows(params)
    ref = np.random.default_rng(0).standard_normal((len(rows), 1000))
    out = np.zeros((64, 1000))
    out[rows] = ref
    assert wl.check(out, ref, params, "float32")[0] == 0.0
    out[rows[-1], 3] += 1.0  # a wrong last row shows
    assert wl.check(out, ref, params, "float32")[0] > 1e-3
    assert wl.check(out[:10], ref, params, "float32")[0] == math.inf


def test_reference_is_the_numpy_forward_in_float64(wl, weight_cache):
    params = wl.normalize_params({"model": "cnn", "batch": 3})
    inputs = wl.make_inputs(params, "float32", None)
    ref = wl.reference(inputs, params)
    assert ref.dtype == np.float64 and ref.shape == (3, 10)
    low = forward("cnn", case_weights(inputs), inputs["x"], np.float32)
    rel, tol = wl.check(low, ref, params, "float32")
    assert rel < 1e-5 < tol


# --- per-call latency -------------------------------------------------------------------------------------
class Clock:
    """A fake host clock that a fake call advances."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class HostOnly:
    name = "perf_counter"


def test_percentile_is_nearest_rank():
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == 50 and percentile(xs, 99) == 99 and percentile(xs, 100) == 100
    assert percentile([3.0], 99) == 3.0 and percentile([1.0, 2.0], 50) == 1.0


@pytest.mark.parametrize("per_call, calls", [(1e-5, TARGET_CALLS), (1e-3, TAIL_CALLS), (1.0, 3)])
def test_latency_stops_by_calls_then_budget(per_call, calls):
    clock, events = Clock(), []

    def fn():
        clock.t += per_call
        events.append("call")

    def sync():
        events.append("sync")

    settings = HarnessSettings(warmup_s=0.0, warmup_min_calls=1, min_samples=3, budget_s=0.05)
    m, metrics = measure_latency(fn, HostOnly(), sync, settings, now=clock)
    assert len(m.samples) == calls and m.number == 1 and m.clock == "perf_counter"
    assert all(s == pytest.approx(per_call) for s in m.samples)
    assert metrics == {"latency_method": PER_CALL, "latency_calls": calls, "latency_clock": "perf_counter"}
    assert events[:6] == ["sync", "call", "sync"] * 2  # every call between two synchronizations
    if calls == 3:  # a slow call: min_samples once BUDGET_FACTOR budgets are spent
        assert sum(m.samples) >= BUDGET_FACTOR * settings.budget_s


def test_latency_keeps_the_device_events_beside_the_host_clock():
    clock, window = Clock(), []

    class Events:
        name = "cuda_event"
        last_host_s = None

        def __call__(self, fn, number):
            clock.t += 2e-6  # the launch
            fn()
            return 1e-4  # what the events read

    class Watch:
        def window_start(self):
            window.append("start")

        def window_end(self, calls, not_per_call=""):
            window.append(calls)

    def fn():
        clock.t += 1e-4

    m, metrics = measure_latency(fn, Events(), lambda: None, TINY, now=clock, observer=Watch())
    assert all(s == pytest.approx(1.02e-4) for s in m.samples)  # the host time holds the launch
    assert metrics["device_clock"] == "cuda_event" and metrics["device_latency_p99_s"] == 1e-4
    assert window == ["start", len(m.samples)]


def test_latency_columns_only_for_per_call_records():
    samples = [0.001] * 99 + [0.01]
    cols = latency_columns(samples, 1, {"latency_method": PER_CALL, "samples_per_call": 8})
    assert cols["latency_p50_s"] == 0.001 and cols["latency_p99_s"] == 0.001 and cols["latency_calls"] == 100
    assert cols["throughput_samples_per_s"] == pytest.approx(8 * 100 / sum(samples))
    assert latency_columns(samples, 4, {"latency_method": PER_CALL}) == dict.fromkeys(COLUMNS)
    assert latency_columns(samples, 1, {}) == dict.fromkeys(COLUMNS)


# --- real runs at tiny sizes ------------------------------------------------------------------------------
def run(backend, model, batch=2, dtype="float32", variant="default"):
    from gpubench.case import run_case
    from gpubench.records import CaseSpec

    return run_case(CaseSpec.make("inference", backend, "cpu", dtype, {"model": model, "batch": batch}, variant), TINY)


def assert_ok(r, batch=2):
    assert r.status == "ok", (r.error, r.metrics.get("traceback"))
    assert r.rel_error <= r.tolerance
    m = r.metrics
    assert m["latency_method"] == PER_CALL and m["samples_per_call"] == batch and m["latency_calls"] == len(r.samples)
    assert m.get("peak_memory_bytes") or m.get("peak_memory_note")
    cols = latency_columns(r.samples, r.number, m)
    assert cols["latency_p50_s"] <= cols["latency_p90_s"] <= cols["latency_p99_s"]
    assert cols["throughput_samples_per_s"] > 0
    from gpubench.records import CaseResult

    assert CaseResult.from_dict(r.to_dict()) == r  # a valid record, as stored


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_numpy_runs(weight_cache, model):
    r = run("numpy", model)
    assert_ok(r)
    assert r.metrics["memory_method"].startswith("tracemalloc")


@pytest.mark.parametrize("model, dtype", [("mlp", "float32"), ("cnn", "bfloat16")])
def test_torch_eager_runs(weight_cache, model, dtype):
    pytest.importorskip("torch")
    r = run("torch", model, dtype=dtype)
    assert_ok(r)
    assert r.metrics["torch_variant"] == "eager" and r.spec_hash


@pytest.mark.slow
def test_torch_compile_runs(weight_cache):
    pytest.importorskip("torch")
    assert_ok(run("torch", "mlp", variant="compile"))


def test_torch_graph_variant_on_the_cpu_is_a_skip(weight_cache):
    pytest.importorskip("torch")
    r = run("torch", "mlp", variant="graph")
    assert r.status == "skipped" and "runs on cuda devices only" in r.error


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_jax_and_tensorflow_run(weight_cache, backend):
    pytest.importorskip(backend)
    assert_ok(run(backend, "cnn"))


@pytest.mark.slow
def test_resnet18_on_torch_is_the_numpy_reference(weight_cache):
    pytest.importorskip("torch")
    r = run("torch", "resnet18", batch=1)
    assert_ok(r, batch=1)
    assert r.rel_error < 1e-5


def test_an_unknown_dtype_for_a_backend_is_a_skip(weight_cache):
    r = run("numpy", "mlp", dtype="bfloat16")
    assert r.status == "skipped" and "bfloat16" in r.error


# --- the torch modules ------------------------------------------------------------------------------------
def test_resnet18_module_has_torchvisions_state_dict():
    torch = pytest.importorskip("torch")
    from gpubench.backends.torch_backend.inference_nets import resnet18

    state = resnet18(torch).state_dict()
    mine = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert list(mine.items()) == list(resnet18_shapes().items())  # names, order and shapes


def test_resnet18_matches_torchvision_where_it_imports():
    torch = pytest.importorskip("torch")
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - a torchvision built for another torch fails in many ways
        pytest.skip(f"torchvision does not import beside torch {torch.__version__}: {type(exc).__name__}: {exc}")
    from gpubench.backends.torch_backend.inference_nets import build_net

    reference = torchvision.models.resnet18(weights=None).eval()
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    ours = build_net(torch, "resnet18", weights_module.make_weights("resnet18", 0))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == theirs
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, 224, 224)
    torch.testing.assert_close(reference(x), ours(x))


def test_gpt_module_is_the_numpy_forward(weight_cache):
    torch = pytest.importorskip("torch")
    from gpubench.backends.torch_backend.inference_nets import build_net

    w = weights_module.load_weights("gpt", 0)
    tokens = np.random.default_rng(0).integers(0, 8192, size=(1, 128))
    ref = forward("gpt", w, tokens, np.float64)
    out = build_net(torch, "gpt", w)(torch.from_numpy(tokens)).numpy()
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5
