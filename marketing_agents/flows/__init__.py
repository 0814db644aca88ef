"""What coordinates agents, memory and stores for one piece of work: lead intake (the lead
orchestrator), interaction feedback, the campaign optimizer's runs, touchpoint dispatch and training
from the system's own conversions. Serve deployments, the MCP server, jobs and the CLI call these."""
