"""Stage fetch (rules/fetch.smk): pinned, verified downloads from the Hugging Face hub.

- :mod:`.download`: sources, the verified cache, manifests, ``pin``/``check`` (the library and the CLI);
- :mod:`.jobs`: what the fetch rules' scripts call (a config source in, a manifest out);
- :mod:`.local`: stand-ins of the real config's repositories, written in their layouts (``make smoke``).

    python -m rhocluster.hub pin --configfile config/rho1-tinyllama.yaml [--write]
    python -m rhocluster.hub check --configfile config/rho1-tinyllama.yaml
    python -m rhocluster.hub local resources/hub
"""
