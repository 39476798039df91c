"""tinyllama: pretrain, resume, convert, evaluate and sample small Llama models."""

__version__ = "0.1.0"
