"""Programs, residents, citizen cards and community organizations: who earns, under which rules."""
