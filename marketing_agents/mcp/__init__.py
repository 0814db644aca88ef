"""The MCP server: its catalogue of resources and tools, the handlers, authorisation, the SDK wiring."""
