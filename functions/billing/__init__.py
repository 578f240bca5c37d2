"""The billing pipeline: charges captured from signed encounters, corrected by billers,
assembled into claims (docs/billing.md)."""
