"""mSupply job kinds (push, initial dump)."""
