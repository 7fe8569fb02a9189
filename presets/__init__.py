"""The shipped presets (YAML files), installed as the package ``aether_rt.presets``."""
