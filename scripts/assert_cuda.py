#!/usr/bin/env python3
"""Fail loudly unless PyTorch sees a CUDA GPU and genlab picks it (used by the GPU CI job)."""

import sys

import torch

import genlab

if not torch.cuda.is_available():
    sys.exit("CUDA is not available to PyTorch: this job must not silently run on the CPU "
             f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})")
device = genlab.get_device()
if device.type != "cuda":
    sys.exit(f"genlab chose {device}, not CUDA (check GENLAB_DEVICE)")
x = torch.randn(1024, 1024, device=device)
torch.cuda.synchronize()
print(f"CUDA OK: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, profile {genlab.get_profile()}, checksum {float((x @ x).sum()):.3e}")
