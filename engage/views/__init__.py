"""engage's HTML pages: thin views over engage.queries and engage.services."""
