"""Data: prepare-data (sources -> token shards), dataset (shards -> batches), mixture, built-in
corpus."""
