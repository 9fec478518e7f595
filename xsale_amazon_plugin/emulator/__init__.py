"""Local stand-ins for Amazon SP-API pieces (report generation) used by tests and demos."""
