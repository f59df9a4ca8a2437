"""podid operator CLI."""
