"""Conversion between the native checkpoint format, Hugging Face Llama and GGUF."""
