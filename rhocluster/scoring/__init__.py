"""Reference-model passes over the corpus: per-token loss, token embeddings, leaf assignment."""
