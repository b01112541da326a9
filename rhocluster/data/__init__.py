"""Token shards: fixed windows in Megatron's indexed-dataset format plus per-token side arrays."""
