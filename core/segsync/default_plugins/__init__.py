"""Built-in behaviour, registered through the same hooks as third-party plugins."""
