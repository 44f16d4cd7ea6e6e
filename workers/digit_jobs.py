"""DIGIT job kinds (sync files)."""
