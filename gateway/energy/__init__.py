"""Energy: tariffs, settlement (pure), invoices, reconciliation, contracts, carbon (ARCHITECTURE §5)."""
