"""Command implementations behind ``aether-rt`` (the CLI module only parses)."""
