"""crmsync's built-in plugins, installed as ``crmsync_plugins`` and registered through entry points."""
