"""An async Python client for the gamesocket wire protocol (bots and scripts)."""
