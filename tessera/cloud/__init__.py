"""Cloud containers: held by Tessera, reached with a credential file, usable from a limited number of devices."""
