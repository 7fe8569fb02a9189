"""The web control page: a WebSocket server (:mod:`.server`), its messages (:mod:`.protocol`), its files (static/)."""
