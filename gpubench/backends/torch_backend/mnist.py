"""MNIST training in PyTorch: ``nn.Sequential`` models, ``torch.optim``; data kept on the device.

The whole training and evaluation set is uploaded once and each minibatch is gathered on the
device with the shared per-epoch permutation: no DataLoader, no host round trip per step. The
batch losses are summed on the device and read once per epoch, so a GPU never waits on the host.
"""

from __future__ import annotations

import time

from gpubench.workloads.mnist import training_op, weights_of

ADAM_EPS = 1e-7  # as in the NumPy reference and Keras (torch's default is 1e-8)


def make_model(torch, model: str, weights, dropout: float, dtype, device):
    """The model of the workload, loaded with the shared initial weights."""
    nn = torch.nn
    if model == "mlp":
        net = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10))
        layout = {0: ("w1", "b1"), 3: ("w2", "b2")}
    else:
        net = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 10))
        layout = {0: ("c1", "cb1"), 3: ("c2", "cb2"), 7: ("w3", "b3"), 9: ("w4", "b4")}
    with torch.no_grad():
        for index, (w, b) in layout.items():
            layer = net[index]
            value = torch.from_numpy(weights[w])
            # nn.Linear stores (out, in); the shared layout is (in, out). Conv layouts agree.
            layer.weight.copy_(value.T if isinstance(layer, nn.Linear) else value)
            layer.bias.copy_(torch.from_numpy(weights[b]))
    return net.to(device=device, dtype=dtype)


def build(backend, spec, params, inputs, device):
    """Model, optimizer and data on the device; ``call`` runs the whole training once."""
    torch = backend.torch
    if device.kind == "cuda":
        torch.cuda.set_device(device.id)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    dtype = backend.torch_dtype(spec.dtype)
    shape = (-1, 784) if params["model"] == "mlp" else (-1, 1, 28, 28)
    x_train = backend.upload(inputs["x_train"], device, spec.dtype).reshape(shape)
    x_eval = backend.upload(inputs["x_eval"], device, spec.dtype).reshape(shape)
    y_train = backend.upload(inputs["y_train"], device)
    y_eval = backend.upload(inputs["y_eval"], device)
    order = backend.upload(inputs["order"], device)
    weights = weights_of(inputs)
    bs, n = params["batch_size"], len(inputs["x_train"])
    loss_fn = torch.nn.functional.cross_entropy

    def sync():
        backend.synchronize(device)

    def run():
        torch.manual_seed(params["seed"] + 1)
        net = make_model(torch, params["model"], weights, params["dropout"], dtype, device.id)
        if params["optimizer"] == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=params["lr"])
        else:
            opt = torch.optim.Adam(net.parameters(), lr=params["lr"], eps=ADAM_EPS)
        curve = []
        for epoch in range(params["epochs"]):
            net.train()
            sync()
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), dtype=dtype, device=device.id)
            batches = 0
            for i in range(0, n, bs):
                idx = order[epoch, i:i + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(x_train[idx]), y_train[idx])
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                batches += 1
            train_loss = float(loss_sum) / batches
            sync()
            t1 = time.perf_counter()
            net.eval()
            with torch.no_grad():
                eval_loss = torch.zeros((), dtype=torch.float64, device=device.id)
                correct = torch.zeros((), dtype=torch.int64, device=device.id)
                for i in range(0, len(x_eval), 1000):
                    logits = net(x_eval[i:i + 1000])
                    yb = y_eval[i:i + 1000]
                    eval_loss += loss_fn(logits, yb, reduction="sum").double()
                    correct += (logits.argmax(dim=1) == yb).sum()
                ne = len(x_eval)
                eval_loss_f, acc = float(eval_loss) / ne, int(correct) / ne
            t2 = time.perf_counter()
            curve.append({"epoch": epoch + 1, "epoch_s": t1 - t0, "eval_s": t2 - t1, "train_loss": train_loss,
                          "eval_loss": eval_loss_f, "eval_accuracy": acc})
        return curve

    def close():
        nonlocal x_train, x_eval, y_train, y_eval, order
        del x_train, x_eval, y_train, y_eval, order
        if device.kind == "cuda":
            torch.cuda.empty_cache()

    return training_op(params, run, close=close)
