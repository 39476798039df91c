"""The model file formats, below every command that reads or writes them.

names.py   NameMap: native <-> external tensor names from a top-level and a per-layer table
hf.py      Hugging Face Llama directories: names, config.json (both ways), safetensors, tokenizer
native.py  the native model dir (run-dir layout, one step-0 checkpoint); DCP model entries
gguf.py    GGUF for llama.cpp: write and read back (q/k permutation, embedded tokenizer)

load.py, convert/, train/ and eval import these; these import only the model, the tokenizer,
config, files and rundir.
"""
