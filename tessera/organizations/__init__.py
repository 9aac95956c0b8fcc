"""Client data: the organization tree, users and memberships (rights live in `tessera.rights`)."""
