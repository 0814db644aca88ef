"""The MCP server (official SDK) and its resource router."""
