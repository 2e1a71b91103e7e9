"""MNIST training in PyTorch: ``nn.Sequential`` models, ``torch.optim``; data kept on the device.

The whole training and evaluation set is uploaded once and each minibatch is gathered on the
device with the shared per-epoch permutation: no DataLoader, no host round trip per step. The
batch losses are summed on the device and read once per epoch, so a GPU never waits on the host.
"""

from __future__ import annotations

from gpubench.workloads.training import TrainingSession, weights_of

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


class TorchSession(TrainingSession):
    """The model, optimizer and data of one MNIST case on a torch device."""

    def __init__(self, backend, spec, params, inputs, device):
        torch = self.torch = backend.torch
        self.backend, self.device, self.params = backend, device, params
        self.dtype = backend.torch_dtype(spec.dtype)
        shape = (-1, 784) if params["model"] == "mlp" else (-1, 1, 28, 28)
        self.x_train = backend.upload(inputs["x_train"], device, spec.dtype).reshape(shape)
        self.x_eval = backend.upload(inputs["x_eval"], device, spec.dtype).reshape(shape)
        self.y_train = backend.upload(inputs["y_train"], device)
        self.y_eval = backend.upload(inputs["y_eval"], device)
        self.order = backend.upload(inputs["order"], device)
        self.weights = weights_of(inputs)
        self.loss_fn = torch.nn.functional.cross_entropy
        self.net = self.opt = None

    def start(self) -> None:
        torch, p = self.torch, self.params
        torch.manual_seed(p["seed"] + 1)
        self.net = make_model(torch, p["model"], self.weights, p["dropout"], self.dtype, self.device.id)
        if p["optimizer"] == "sgd":
            self.opt = torch.optim.SGD(self.net.parameters(), lr=p["lr"])
        else:
            self.opt = torch.optim.Adam(self.net.parameters(), lr=p["lr"], eps=ADAM_EPS)

    def train_epoch(self, epoch: int) -> float:
        net, opt, bs = self.net, self.opt, self.params["batch_size"]
        net.train()
        loss_sum = self.torch.zeros((), dtype=self.dtype, device=self.device.id)
        batches = 0
        for i in range(0, len(self.x_train), bs):
            idx = self.order[epoch, i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(net(self.x_train[idx]), self.y_train[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            batches += 1
        return float(loss_sum) / batches  # float() waits for the device

    def evaluate(self) -> tuple[float, float]:
        torch, net = self.torch, self.net
        net.eval()
        with torch.no_grad():
            eval_loss = torch.zeros((), dtype=torch.float64, device=self.device.id)
            correct = torch.zeros((), dtype=torch.int64, device=self.device.id)
            for i in range(0, len(self.x_eval), 1000):
                logits = net(self.x_eval[i:i + 1000])
                yb = self.y_eval[i:i + 1000]
                eval_loss += self.loss_fn(logits, yb, reduction="sum").double()
                correct += (logits.argmax(dim=1) == yb).sum()
        n = len(self.x_eval)
        return float(eval_loss) / n, int(correct) / n

    def sync(self) -> None:
        self.backend.synchronize(self.device)

    def close(self) -> None:
        self.net = self.opt = None
        self.x_train = self.x_eval = self.y_train = self.y_eval = self.order = None
        if self.device.kind == "cuda":
            self.torch.cuda.empty_cache()


def build(backend, spec, params, inputs, device):
    """Model, optimizer and data on the device (cuDNN autotuned, TF32 off: checked as true float32)."""
    torch = backend.torch
    if device.kind == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return TorchSession(backend, spec, params, inputs, device)
