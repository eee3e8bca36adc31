"""The devices tests run on: CPU always, CUDA where this machine has it."""
import torch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
