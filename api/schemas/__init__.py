"""Request and response bodies: `XCreate` / `XRead` / `XUpdate`."""
