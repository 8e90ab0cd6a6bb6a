"""Data-parallel training of an LSTM language model whose cell is ferrule's.

The recurrent cell's pointwise math (gates -> h, c) is a
``ferrule.torch.function``: forward and backward run ferrule's compiled
code; the matmuls, the embedding and the loss are ordinary torch modules.
``torch.nn.parallel.DistributedDataParallel`` all-reduces the gradients
that autograd computes — ferrule's backward included — so nothing else is
needed to train on several processes or machines.

Run (see docs/interop.md)::

    python examples/ddp_lstm.py --nproc 2         # 2 local processes, gloo on 127.0.0.1
    torchrun --standalone --nproc-per-node=2 examples/ddp_lstm.py
    torchrun --nnodes=2 --node-rank=$NODE_RANK --nproc-per-node=$NPROC \\
        --master-addr=$MASTER_ADDR --master-port=29500 examples/ddp_lstm.py
    ... --backend nccl --device cuda              # GPUs: one per process

Each process trains on its slice of every global batch (the same global
batch as a single process would see), so one step of N processes equals
one step of one process on the whole batch: ``--dump-grads PATH`` saves
rank 0's all-reduced gradients after the first backward to check that.
"""

import argparse
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import ferrule.numpy as fnp
import ferrule.torch
from ferrule.nn import sigmoid


def lstm_pointwise(G, c):
    """An LSTM cell's pointwise part: gates G (B, 4H), cell c (B, H)."""
    i, f, g, o = fnp.split(G, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


CELL = ferrule.torch.function(lstm_pointwise, pullback="recompute")


class LSTMLanguageModel(nn.Module):
    """Embedding -> LSTM (ferrule's cell) -> logits over the vocabulary."""

    def __init__(self, vocab: int = 32, embed: int = 32, hidden: int = 64, cell=CELL):
        super().__init__()
        self.hidden, self.cell = hidden, cell
        self.embed = nn.Embedding(vocab, embed)
        self.ih = nn.Linear(embed, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden, bias=False)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):                       # (B, T) -> (B, T, vocab)
        B, T = tokens.shape
        gx = self.ih(self.embed(tokens)).transpose(0, 1).contiguous()   # (T, B, 4H)
        h = gx.new_zeros(B, self.hidden)
        c = gx.new_zeros(B, self.hidden)
        hs = []
        for t in range(T):
            h, c = self.cell(gx[t] + self.hh(h), c)
            hs.append(h)
        return self.out(torch.stack(hs, 1))


def make_batch(step: int, batch: int, seq: int, vocab: int, device="cpu"):
    """A global batch of token sequences with learnable structure: each
    token is the previous one times 5 plus 3, mod vocab, with 10% noise."""
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.empty(batch, seq + 1, dtype=torch.long)
    x[:, 0] = torch.randint(0, vocab, (batch,), generator=g)
    for t in range(seq):
        nxt = (x[:, t] * 5 + 3) % vocab
        noise = torch.rand(batch, generator=g) < 0.1
        x[:, t + 1] = torch.where(noise, torch.randint(0, vocab, (batch,), generator=g), nxt)
    return x[:, :-1].to(device), x[:, 1:].to(device)


def loss_fn(model, inputs, targets):
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make_model(args, device="cpu"):
    torch.manual_seed(args.seed)       # same initial weights everywhere (DDP broadcasts rank 0's too)
    dtype = getattr(torch, args.dtype)
    return LSTMLanguageModel(args.vocab, args.embed, args.hidden).to(device=device, dtype=dtype)


def train(rank: int, world: int, args, local_rank: int = None) -> None:
    """One process of the job: ``rank`` of ``world``."""
    local_rank = rank if local_rank is None else local_rank
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("ddp_lstm: --device cuda but CUDA is not available to torch on this "
                     "machine (a CPU build of torch, or no GPU)")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, args.local_world)))
    model = make_model(args, device)
    ddp = nn.parallel.DistributedDataParallel(
        model, device_ids=[local_rank] if device.type == "cuda" else None)
    opt = torch.optim.Adam(ddp.parameters(), lr=args.lr)
    if args.batch % world:
        sys.exit(f"ddp_lstm: --batch {args.batch} must be a multiple of the {world} processes")
    per = args.batch // world
    t0 = time.perf_counter()
    for step in range(args.steps):
        x, y = make_batch(step, args.batch, args.seq, args.vocab)
        x, y = x[rank * per:(rank + 1) * per].to(device), y[rank * per:(rank + 1) * per].to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(ddp, x, y)
        loss.backward()                          # DDP all-reduces (averages) the gradients
        if step == 0 and args.dump_grads and rank == 0:
            torch.save({n: p.grad.detach().cpu() for n, p in model.named_parameters()},
                       args.dump_grads)
        opt.step()
        if rank == 0 and (step % args.log_every == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
    if rank == 0:
        print(f"done: {args.steps} steps on {world} process(es), backend {args.backend}, "
              f"device {args.device}", flush=True)


def _worker(rank: int, world: int, port: int, args) -> None:
    """A process started by ``--nproc``: joins the group on 127.0.0.1."""
    dist.init_process_group(args.backend, init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world)
    try:
        train(rank, world, args)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2,
                   help="processes to spawn on this machine (ignored under torchrun)")
    p.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32, help="global batch (all processes)")
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--vocab", type=int, default=32)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--dump-grads", default="",
                   help="save rank 0's all-reduced gradients after the first backward here")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:    # started by torchrun
        args.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if args.device == "cuda" and not torch.cuda.is_available():
            sys.exit("ddp_lstm: --device cuda but CUDA is not available to torch on this "
                     "machine (a CPU build of torch, or no GPU)")
        dist.init_process_group(args.backend)                   # MASTER_ADDR/PORT from torchrun
        try:
            train(dist.get_rank(), dist.get_world_size(), args, local_rank)
        finally:
            dist.destroy_process_group()
        return
    args.local_world = args.nproc
    port = free_port()
    torch.multiprocessing.spawn(_worker, args=(args.nproc, port, args), nprocs=args.nproc)


if __name__ == "__main__":
    main()
