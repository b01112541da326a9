"""One trainer for the reference fine-tune and every CPT variant (megatron-core GPTModel)."""
