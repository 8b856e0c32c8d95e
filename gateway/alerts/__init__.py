"""Alert lifecycle (SQLite) and notifications."""
