"""Conversion between the native checkpoint format, Hugging Face Llama and GGUF.

api.py          `convert()`: the one function the CLI calls (validate, load, write staged, verify)
hf.py           native <-> HF names and config.json
huggingface.py  the HF file set (safetensors shards, config, tokenizer files)
native.py       the native model dir (run-dir layout, one step-0 DCP checkpoint)
gguf.py         GGUF export for llama.cpp and read-back
verify.py       logits of the written model against the source
output.py       staged writes, sizes, file listings
"""
