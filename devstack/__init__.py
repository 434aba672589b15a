"""Development tooling: provision and run the real engine, router and services."""
