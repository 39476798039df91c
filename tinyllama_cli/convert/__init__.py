"""`tinyllama convert`: the command's own work over the formats in `tinyllama_cli/formats/`.

api.py          `convert()`: the one function the CLI calls (validate, load, write staged, verify)
verify.py       logits of the written model against the source
output.py       --max-shard-size parsing, file listings
"""
