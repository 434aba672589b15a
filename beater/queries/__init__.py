"""The query control plane: register and describe queries over WAMP, and their lifecycle."""
