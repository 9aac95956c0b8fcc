"""The catalog: product groups and products, seeded from `config/catalog.yaml` and edited through the API."""
