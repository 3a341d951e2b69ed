"""Compiles the Pallas scan kernels for an H100/H200 (sm_90a) on a machine with no GPU, and counts
what slows a recurrence down: shared-memory barriers, warp shuffles, register spills, and the
machine instructions (SASS) of the chunk loop, from which it gives an issue-bound time estimate.

    python benchmarks/scan_ptx.py --triton-python /path/to/venv/bin/python fwd_block=64 fwd_warps=1
    python benchmarks/scan_ptx.py --triton-python ... --grad bwd_block=32 bwd_chunk=2

JAX lowers the kernel to Triton IR without a GPU (jax.export for platform "cuda"); a separate
Python with the `triton` package (pip install triton; kept apart because its MLIR clashes with
jaxlib's) turns that into TTGIR and PTX, and the CUDA toolkit's ptxas reports registers and
spills, and cuobjdump (shipped with triton) the SASS. Layout choices are those of that triton
version, which may differ from the Triton inside jaxlib: a guide for choosing what to time on a
GPU, not a substitute for timing.

The estimate: each scheduler (4 per SM) issues one warp instruction per clock and its MUFU unit
takes 8 clocks per warp-wide exp2, so a warp's step costs max(instructions, 8 x MUFU) clocks; the
busiest scheduler runs ceil(ceil(programs / SMs) x warps per program / 4) warps over the run.
It assumes every memory and dependency latency hidden: a lower bound. The exp floor is one MUFU
exp2 per (channel, state) per step at 16 per clock per SM.
Uses private JAX APIs (the Triton dialect bindings): a development tool, not part of the package.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
from jax import export

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kernels import scan_pallas  # noqa: E402

COMPILE = r"""
import os, sys, triton
from triton.backends.compiler import GPUTarget
k = triton.compile(sys.argv[1], target=GPUTarget("cuda", 90, 32),
                   options={"num_warps": int(sys.argv[2]), "num_stages": 1})
open(sys.argv[1] + ".ttgir", "w").write(k.asm["ttgir"])
open(sys.argv[1] + ".ptx", "w").write(k.asm["ptx"])
print(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump"))
"""

SMS, CLOCK = 132, 1.98e9  # H100/H200 SXM: SMs, boost clock (the H200's, as measured)
MUFU_PER_SM = 16          # exp2 per clock per SM


def triton_ir(kernel_name, grad, batch, length, channels, state, config):
  """The Triton IR (text) of the named pallas_call in the selective scan for platform cuda."""
  sds = jax.ShapeDtypeStruct
  seq, vec = sds((batch, length, channels), jnp.float32), sds((channels,), jnp.float32)
  bc = sds((batch, length, 1, state), jnp.float32)

  def f(u, delta, A, B, C, D, bias):
    y, _ = scan_pallas.selective_scan(u, delta, A, B, C, D, None, bias, True, interpret=False,
                                      **config)
    return y.sum() if grad else y

  fn = jax.grad(f, argnums=tuple(range(7))) if grad else f
  exported = export.export(
      jax.jit(fn), platforms=["cuda"],
      disabled_checks=[export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")])(
          seq, seq, sds((channels, state), jnp.float32), bc, bc, vec, vec)
  text = exported.mlir_module()
  end = text.index(f'name = "{kernel_name}"')
  start = text.rindex('ir = "', 0, end) + len('ir = "')
  return _bytecode_to_text(_mlir_string_bytes(text, start))


def _mlir_string_bytes(text, i):
  """Decodes an MLIR string literal starting at text[i] (\\XX hex escapes)."""
  out = bytearray()
  while text[i] != '"':
    if text[i] == "\\":
      nxt = text[i + 1]
      if nxt in '\\"':
        out.append(ord(nxt))
        i += 2
      else:
        out.append(int(text[i + 1:i + 3], 16))
        i += 3
    else:
      out += text[i].encode()
      i += 1
  return bytes(out)


def _bytecode_to_text(bytecode):
  from jax._src.interpreters import mlir
  from jax._src.lib.mlir import ir
  from jax._src.lib.triton import dialect as tt_dialect
  ctx = mlir.JaxIrContext()
  ctx.append_dialect_registry(mlir.upstream_dialects)
  tt_dialect.register_dialect(ctx)
  ctx.load_all_available_dialects()
  with ctx:
    return ir.Module.parse(bytecode).operation.get_asm(enable_debug_info=False)


def main_loop(sass):
  """The instructions of the largest loop in cuobjdump -sass output: the kernel's chunk loop."""
  ins = [(int(m.group(1), 16), m.group(2)) for m in
         re.finditer(r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", sass, re.M)]
  best = []
  for addr, text in ins:
    target = re.search(r"BRA\b.*?0x([0-9a-f]+)", text)
    if target and int(target.group(1), 16) < addr:
      body = [t for a, t in ins if int(target.group(1), 16) <= a <= addr]
      best = max(best, body, key=len)
  return best


def estimate(loop, cfg, grad, batch, length, channels, state):
  """The issue-bound estimate (module docstring) and the exp floor, in seconds."""
  chunk, block, warps = ((cfg.bwd_chunk, cfg.bwd_block, cfg.bwd_warps) if grad else
                         (cfg.fwd_chunk, cfg.fwd_block, cfg.fwd_warps))
  instructions = len(loop) / chunk  # per warp per step
  mufu = sum(t.startswith("MUFU") for t in loop) / chunk
  ctas = batch * -(-channels // block)
  # Equal programs: each SM ends up running ceil(ctas / SMS) of them, spread over 4 schedulers.
  busiest = -(-(-(-ctas // SMS) * warps) // 4)
  seconds = busiest * length * max(instructions, 8 * mufu) / CLOCK
  floor = batch * length * channels * state / (MUFU_PER_SM * SMS * CLOCK)
  return dict(instructions=instructions, mufu=mufu, busiest=busiest, seconds=seconds, floor=floor)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("config", nargs="*", help="Config overrides, e.g. fwd_block=64 fwd_warps=1")
  p.add_argument("--grad", action="store_true", help="the backward kernel")
  p.add_argument("--triton-python", default=sys.executable)
  p.add_argument("--ptxas", default="ptxas")
  p.add_argument("--shape", default="128,257,384,16", help="batch,length,channels,state")
  p.add_argument("--dump", help="a folder to write the kernel's .ttgir, .ptx and .sass into")
  args = p.parse_args(argv)
  config = {k: ast.literal_eval(v) for k, v in (c.split("=", 1) for c in args.config)}
  cfg = scan_pallas.Config(softplus=True, **config)
  warps = cfg.bwd_warps if args.grad else cfg.fwd_warps
  name = "selective_scan_bwd" if args.grad else "selective_scan_fwd"
  shape = tuple(map(int, args.shape.split(",")))
  ttir = triton_ir(name, args.grad, *shape, config)
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "kernel.ttir")
    with open(path, "w") as f:
      f.write(ttir)
    cuobjdump = subprocess.run([args.triton_python, "-c", COMPILE, path, str(warps)], check=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True).stdout.strip()
    ptx = open(path + ".ptx").read()
    ttgir = open(path + ".ttgir").read()
    # ptxas may be older than the PTX ISA triton writes; the instructions used are not.
    with open(path + ".old.ptx", "w") as f:
      f.write(re.sub(r"^\.version .*$", ".version 8.0", ptx, count=1, flags=re.M))
    cubin = os.path.join(tmp, "k.cubin")
    res = subprocess.run([args.ptxas, "-arch=sm_90a", "-v", path + ".old.ptx", "-o", cubin],
                         capture_output=True, text=True)
    sass = (subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True).stdout
            if res.returncode == 0 else "")
  if args.dump:
    os.makedirs(args.dump, exist_ok=True)
    for ext, text in (("ttgir", ttgir), ("ptx", ptx), ("sass", sass)):
      with open(os.path.join(args.dump, f"{name}.{ext}"), "w") as f:
        f.write(text)
  regs = re.search(r"Used (\d+) registers", res.stderr)
  spills = re.search(r"(\d+) bytes spill stores", res.stderr)
  layout = re.search(r"#ttg\.blocked<\{[^}]*\}>", ttgir)
  print(f"{name} {config}: bar.sync {ptx.count('bar.sync')}, shfl {ptx.count('shfl.sync')}, "
        f"ld.shared {ptx.count('ld.shared')}, ex2 {ptx.count('ex2.approx')}, "
        f"registers {regs.group(1) if regs else '?'}, "
        f"spill stores {spills.group(1) if spills else '?'} B"
        f"{'' if res.returncode == 0 else ' (ptxas failed: ' + res.stderr.strip()[:200] + ')'}")
  print(f"  first layout: {layout.group(0) if layout else '?'}")
  loop = main_loop(sass)
  if loop:
    e = estimate(loop, cfg, args.grad, *shape)
    print(f"  chunk loop, per warp per step: {e['instructions']:.0f} SASS instructions, "
          f"{e['mufu']:.0f} MUFU (issue / MUFU clocks {e['instructions'] / (8 * e['mufu']):.2f}); "
          f"busiest scheduler {e['busiest']} warp(s)")
    print(f"  issue-bound estimate at {args.shape}: {e['seconds'] * 1e6:.0f} us = "
          f"{e['seconds'] / e['floor']:.2f} x the exp floor ({e['floor'] * 1e6:.0f} us)")


if __name__ == "__main__":
  main()
