"""Training: loop, optimizer + schedule, distributed (FSDP2), checkpoint (DCP), launch, metrics."""
