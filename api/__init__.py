"""The HTTP face of Tessera: authenticate, parse, read the database, start and steer workflows."""
