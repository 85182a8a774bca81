"""An independent BERT in plain PyTorch (torch.nn layers and functional ops; not Transformers), written from
the architecture (Devlin et al. 2018; Transformers' BertModel conventions: post-LayerNorm blocks, erf GELU,
an additive attention mask of float32's minimum, the MLM decoder tied to the word embeddings).

bench/throughput.mjs and test/torch-parity.test.ts drive it; it needs only `torch` (Debian's python3-torch):

  python3 bench/torch_bert.py forward CHECKPOINT_DIR INPUTS_JSON OUT_SAFETENSORS
      Load config.json + model.safetensors (as saveHfCheckpoint writes them), run the encoder, pooler,
      classifier and MLM head on the inputs ({"input_ids", "attention_mask", "token_type_ids": [batch][seq],
      "positions": flat b*seq+t}) in evaluation mode, and write every output as F32 safetensors.
  python3 bench/torch_bert.py train CONFIG_JSON --batch 32 --seq 128 --steps 5 --warmup 2
      Time classification training steps (forward with dropout, backward, Adam) on random data; prints one
      JSON line {"threads", "torch", "blas", "step_ms": [...], "cpu_step_ms": [...] (CPU time, all threads),
      "median_ms", "cpu_ms", "examples_per_s"}. Set the thread count with
      OMP_NUM_THREADS (read before torch starts its pool) and torch.set_num_threads, which this script does.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32}


def read_safetensors(path):
    """Tensors by name from a safetensors file (the format's own spec: u64 header length, JSON, data)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        t = torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]) if end > start else torch.empty(0)
        out[name] = t.reshape(info["shape"]).to(torch.float32)
    return out


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        raw = t.numpy().tobytes() if t.numel() > 0 else b""
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header)
    text += " " * ((8 - len(text.encode()) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text.encode())))
        f.write(text.encode())
        for c in chunks:
            f.write(c)


def act(name, x):
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    if name == "relu":
        return F.relu(x)
    raise ValueError(f"unknown activation {name}")


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, ff = c["hidden_size"], c["intermediate_size"]
        self.heads = c["num_attention_heads"]
        self.act = c["hidden_act"]
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.inner = nn.Linear(d, ff)
        self.out = nn.Linear(ff, d)
        self.out_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.p_hidden = c["hidden_dropout_prob"]
        self.p_attn = c["attention_probs_dropout_prob"]

    def forward(self, x, bias):
        b, t, d = x.shape
        dh = d // self.heads
        split = lambda y: y.view(b, t, self.heads, dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if bias is not None:
            scores = scores + bias
        probs = F.dropout(torch.softmax(scores, dim=-1), self.p_attn, self.training)
        ctx = (probs @ v).transpose(1, 2).reshape(b, t, d)
        h = self.attn_norm(x + F.dropout(self.attn_out(ctx), self.p_hidden, self.training))
        y = self.out(act(self.act, self.inner(h)))
        return self.out_norm(h + F.dropout(y, self.p_hidden, self.training))


class Bert(nn.Module):
    """Encoder, pooler, classifier and MLM head; parameter names are mapped from Hugging Face's in load()."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["hidden_size"]
        self.word = nn.Embedding(c["vocab_size"], d)
        self.position = nn.Embedding(c["max_position_embeddings"], d)
        self.token_type = nn.Embedding(c["type_vocab_size"], d)
        self.emb_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.pooler = nn.Linear(d, d)
        self.classifier = nn.Linear(d, c["num_labels"])
        self.mlm_dense = nn.Linear(d, d)
        self.mlm_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.mlm_bias = nn.Parameter(torch.zeros(c["vocab_size"]))

    def encode(self, ids, mask=None, types=None):
        b, t = ids.shape
        if types is None:
            types = torch.zeros_like(ids)
        x = self.word(ids) + self.position(torch.arange(t)).unsqueeze(0) + self.token_type(types)
        x = F.dropout(self.emb_norm(x), self.c["hidden_dropout_prob"], self.training)
        bias = None
        if mask is not None:
            bias = (1.0 - mask.to(torch.float32)).view(b, 1, 1, t) * torch.finfo(torch.float32).min
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def pool(self, seq):
        return torch.tanh(self.pooler(seq[:, 0]))

    def class_logits(self, seq):
        return self.classifier(F.dropout(self.pool(seq), self.c["hidden_dropout_prob"], self.training))

    def mlm_logits(self, seq, positions):
        rows = seq.reshape(-1, seq.shape[-1])[positions]
        h = self.mlm_norm(act(self.c["hidden_act"], self.mlm_dense(rows)))
        return h @ self.word.weight.t() + self.mlm_bias

    def load(self, hf):
        names = {
            "bert.embeddings.word_embeddings.weight": self.word.weight,
            "bert.embeddings.position_embeddings.weight": self.position.weight,
            "bert.embeddings.token_type_embeddings.weight": self.token_type.weight,
            "bert.embeddings.LayerNorm.weight": self.emb_norm.weight,
            "bert.embeddings.LayerNorm.bias": self.emb_norm.bias,
            "bert.pooler.dense.weight": self.pooler.weight,
            "bert.pooler.dense.bias": self.pooler.bias,
            "classifier.weight": self.classifier.weight,
            "classifier.bias": self.classifier.bias,
            "cls.predictions.transform.dense.weight": self.mlm_dense.weight,
            "cls.predictions.transform.dense.bias": self.mlm_dense.bias,
            "cls.predictions.transform.LayerNorm.weight": self.mlm_norm.weight,
            "cls.predictions.transform.LayerNorm.bias": self.mlm_norm.bias,
            "cls.predictions.bias": self.mlm_bias,
        }
        for i, layer in enumerate(self.layers):
            p = f"bert.encoder.layer.{i}."
            for hf_name, mod in [
                ("attention.self.query", layer.query),
                ("attention.self.key", layer.key),
                ("attention.self.value", layer.value),
                ("attention.output.dense", layer.attn_out),
                ("attention.output.LayerNorm", layer.attn_norm),
                ("intermediate.dense", layer.inner),
                ("output.dense", layer.out),
                ("output.LayerNorm", layer.out_norm),
            ]:
                names[f"{p}{hf_name}.weight"] = mod.weight
                names[f"{p}{hf_name}.bias"] = mod.bias
        missing = sorted(set(names) - set(hf))
        if missing:
            raise SystemExit(f"checkpoint lacks {', '.join(missing)}")
        with torch.no_grad():
            for name, param in names.items():
                if tuple(hf[name].shape) != tuple(param.shape):
                    raise SystemExit(f"{name}: checkpoint {tuple(hf[name].shape)}, model {tuple(param.shape)}")
                param.copy_(hf[name])


def forward(args):
    with open(os.path.join(args.checkpoint, "config.json")) as f:
        config = json.load(f)
    model = Bert(config)
    model.load(read_safetensors(os.path.join(args.checkpoint, "model.safetensors")))
    model.eval()
    with open(args.inputs) as f:
        inputs = json.load(f)
    ids = torch.tensor(inputs["input_ids"], dtype=torch.int64)
    mask = torch.tensor(inputs["attention_mask"], dtype=torch.int64)
    types = torch.tensor(inputs["token_type_ids"], dtype=torch.int64)
    positions = torch.tensor(inputs["positions"], dtype=torch.int64)
    with torch.no_grad():
        seq = model.encode(ids, mask, types)
        write_safetensors(
            args.out,
            {
                "sequence": seq,
                "pooled": model.pool(seq),
                "class_probs": torch.softmax(model.class_logits(seq), dim=-1),
                "mlm_logits": model.mlm_logits(seq, positions),
            },
        )


def blas_library():
    """The BLAS torch's matmuls went to (Debian's torch links libblas.so.3, whichever provides it)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/libblas" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none"


def train(args):
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1)
    with open(args.config) as f:
        config = json.load(f)
    model = Bert(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.normal_(0, config["initializer_range"])
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, config["vocab_size"], (args.batch, args.seq), generator=g)
    ids[:, 0] = 2
    labels = torch.randint(0, config["num_labels"], (args.batch,), generator=g)
    times, cpu_times = [], []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        cpu_start = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model.class_logits(model.encode(ids)), labels)
        loss.backward()
        optimizer.step()
        float(loss)
        if step >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
            cpu_times.append((time.process_time() - cpu_start) * 1000)
    median = sorted(times)[len(times) // 2]
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "blas": blas_library(),
                "step_ms": [round(t, 1) for t in times],
                "cpu_step_ms": [round(t, 1) for t in cpu_times],
                "median_ms": round(median, 1),
                "cpu_ms": round(sorted(cpu_times)[len(cpu_times) // 2], 1),
                "examples_per_s": round(args.batch * 1000 / median, 2),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forward")
    f.add_argument("checkpoint")
    f.add_argument("inputs")
    f.add_argument("out")
    t = sub.add_parser("train")
    t.add_argument("config")
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seq", type=int, default=128)
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    forward(args) if args.command == "forward" else train(args)


if __name__ == "__main__":
    sys.exit(main())
